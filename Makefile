# medsr — `make demo` and `make test` each do the whole set-up on a fresh machine.
#
# Set-up: a local .venv, the CPU build of PyTorch first (so the project's
# `torch>=` range is already met and pip does not pull a CUDA build), then medsr
# with its dev extra. Debian tools the tests use (dciodvfy from dicom3tools,
# chromium, pdftoppm from poppler-utils, the Orthanc PACS and its DICOMweb plugin for
# the medsr.pacs tests) are installed with apt-get when missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
MEDSR  := $(VENV)/bin/medsr
TORCH_SPEC ?= torch==2.13.0
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pytest-xdist workers: most of the suite's time is single-threaded subprocesses (MONAI start-up, I/O)
WORKERS ?= 2
DEMO   ?= demo_out

.PHONY: help install system-deps test test-fast demo benchmark clean

help:
	@echo "make demo   set up .venv, upscale the sample data with every model, evaluate, write a report"
	@echo "make test   set up .venv and system tools, run the whole test suite"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[dev,mlflow]"
	touch $@

install: $(VENV)/.installed

system-deps:
	@missing=""; \
	command -v dciodvfy >/dev/null || missing="$$missing dicom3tools"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	command -v Orthanc >/dev/null || missing="$$missing orthanc"; \
	ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || missing="$$missing orthanc-dicomweb"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install system-deps
	$(PY) -m pytest -q -n $(WORKERS)

test-fast: install
	$(PY) -m pytest -q -n $(WORKERS) -m "not slow"

demo: install
	$(MEDSR) --version
	$(MEDSR) upscale sample_data -o $(DEMO)/bicubic -m bicubic -s 2 --overwrite --no-progress
	@for m in edsr_m srcnn_srgan_hybrid attention_residual; do \
	  $(MEDSR) upscale sample_data -o $(DEMO)/$$m -m $$m -s 2 --overwrite --no-progress || exit $$?; \
	done
	$(MEDSR) evaluate sample_data -o $(DEMO)/evaluation -s 2 4 \
	  -m edsr_m,srcnn_srgan_hybrid,attention_residual --no-progress
	@echo "upscaled images: $(DEMO)/<model>/   report: $(DEMO)/evaluation/report.html (and report.pdf)"

benchmark: install
	$(PIP) install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_upscale.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
