"""The loader settings evaluate and train share (data/loading/settings.py)."""

from types import SimpleNamespace

import lightning as L

from imagenet_multilabel.core.runtime import available_cores
from imagenet_multilabel.data.loading.settings import loader_settings


def test_loader_settings_follow_the_device(compose_cfg) -> None:
    """null (auto) batch size, workers and pinning: CPU defaults on a CPU trainer, GPU-sized
    ones on a CUDA device (a trainer's device as Lightning reports it); set values win."""
    cfg = compose_cfg()
    cfg.num_workers = None  # (the fixture sets 0)
    cpu = loader_settings(cfg, L.Trainer(accelerator="cpu", logger=False))
    assert (cpu.batch_size, cpu.num_workers, cpu.pin_memory) == (16, 1, False)
    gpu_trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=SimpleNamespace(type="cuda")), num_devices=1
    )
    gpu = loader_settings(cfg, gpu_trainer)
    assert (gpu.batch_size, gpu.pin_memory) == (256, True)
    assert gpu.num_workers == min(8, available_cores())
    cfg.batch_size, cfg.num_workers, cfg.pin_memory = 64, 3, False
    assert loader_settings(cfg, gpu_trainer) == type(gpu)(64, 3, False, None)
