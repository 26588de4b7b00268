"""Backbone networks shared by the saliency models."""

from sphsal.models.backbones.resnet3d import BasicBlock3d, ResNet3d, resnet3d18, scaled_widths

__all__ = ["BasicBlock3d", "ResNet3d", "resnet3d18", "scaled_widths"]
