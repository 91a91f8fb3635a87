"""Evaluation: stage 4 (COCO ground truth, metrics, distributed gathering).

Owns: ``coco`` (a dataset as COCO JSON), ``evaluate`` (COCO mAP through
faster-coco-eval or pycocotools; ``_check_results`` validates results before either
backend sees them), ``metrics`` (segmentation meters, metric records) and
``distributed`` (evaluation sampler, gathering predictions across ranks).

May import: ``datasets``, ``training``, ``targets``, ``assets``, ``export`` and the
base layer. Not ``cli``.
"""
