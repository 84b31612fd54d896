import logging

from app import MedsrSRApp

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    MedsrSRApp().run()
