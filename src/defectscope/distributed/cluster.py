"""Connecting to Ray: a cluster by address, or a small local instance that starts by itself."""

from __future__ import annotations

from dataclasses import dataclass

from defectscope.errors import ConfigError


@dataclass(frozen=True)
class ClusterConfig:
    """Where to run. ``address`` None starts a local Ray instance (loopback only, no dashboard)
    of ``workers`` CPUs; ``"auto"`` joins the cluster this machine belongs to; ``ray://HOST:PORT``
    a remote one through Ray Client. ``threads`` per worker (onnxruntime, faiss, OpenMP)."""

    address: str | None = None
    workers: int = 2
    threads: int = 1
    object_store_bytes: int = 200 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1:
            raise ConfigError(f"workers and threads must be >= 1 (got {self.workers}, "
                              f"{self.threads})")
        if self.address not in (None, "auto") and not (
                self.address.startswith("ray://") and len(self.address) > len("ray://")):
            raise ConfigError(f"--address must be auto or ray://HOST:PORT, not {self.address!r}")

    def env_vars(self) -> dict[str, str]:
        threads = str(self.threads)
        return {"OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE",
                "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}


def require_ray():
    try:
        import ray
    except ImportError as error:
        raise ConfigError("Ray is not installed: pip install 'defectscope[distributed]'") \
            from error
    return ray


def connect(config: ClusterConfig) -> bool:
    """Initialise Ray for ``config``; True when this call started it (so the caller stops it)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": config.env_vars()}
    try:
        if config.address is None:
            ray.init(num_cpus=config.workers, include_dashboard=False,
                     _node_ip_address="127.0.0.1", object_store_memory=config.object_store_bytes,
                     runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=config.address, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ConfigError(f"cannot reach the Ray cluster at {config.address or 'local'}: "
                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
                          ) from error
    return True


def shutdown(started: bool) -> None:
    if started:
        require_ray().shutdown()
