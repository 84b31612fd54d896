"""Losses for training super-resolution networks: pixel, adversarial, perceptual/feature, SSIM, gradient."""

from __future__ import annotations

from medsr.losses.adversarial import AdversarialLoss
from medsr.losses.generator import GeneratorLoss
from medsr.losses.gradient import GradientLoss
from medsr.losses.perceptual import VGG19_LAYERS, FeatureLoss, PerceptualLoss, build_vgg19_features
from medsr.losses.pixel import PixelLoss
from medsr.losses.ssim import SSIMLoss

__all__ = [
    "AdversarialLoss",
    "FeatureLoss",
    "GeneratorLoss",
    "GradientLoss",
    "PerceptualLoss",
    "PixelLoss",
    "SSIMLoss",
    "VGG19_LAYERS",
    "build_vgg19_features",
]
