"""Which float precision to compute in, chosen by measuring this machine, never by assumption
(`python -m stages.precision` shows the measurement and the choice).

CPUs of one machine kind differ: bfloat16 matrix products ran 2.7x faster than float32 on one here
(AVX512-BF16), about 4x on one with AMX, and 300x slower on one without a fast kernel (../shared/FACTS.md).
So `precision: auto` on a CPU times a float32 and a bfloat16 matrix product on this machine, once, and
takes bfloat16 when it is at least `BF16_MARGIN` times faster; the rates are recorded under
`<work_root>/.machine/` (keyed by CPU model, flags, torch version and threads) and read back by later
stages. On a GPU, auto means bfloat16 where supported, else float16. Training takes the choice as the
Hugging Face Trainer's mixed-precision flag (autocast; the weights stay float32); inference runs under
torch.autocast. An explicit `bf16`, `fp16` or `fp32` overrides the measurement.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import platform
import time
from pathlib import Path

from stages.config import ConfigError
from stages.formats.jsonfile import read_json, write_json

log = logging.getLogger("stages.models.precision")


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BF16_MARGIN = 1.5  # bfloat16 must win by this factor: its rounding is a cost, so a tie is not enough
MATMUL_SIZE = 1024  # square matrices timed (large enough for the fast kernels, ~10 ms each in float32)
MATMUL_SECONDS = 0.4  # per precision


def cpu_info() -> tuple[str, str]:
    """This CPU's model name and its flags line (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model.strip():
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = value.strip()
    except OSError:
        pass
    return model.strip() or platform.machine(), flags


def cpu_identity() -> dict:
    """What the measurement depends on: CPU model and flags, torch version, threads."""
    import torch

    model, flags = cpu_info()
    return {
        "cpu": model,
        "flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def measure_matmul(
    dtype_name: str, size: int = MATMUL_SIZE, seconds: float = MATMUL_SECONDS, device: str = "cpu"
) -> float:
    """GFLOP/s of a square matrix product in `dtype_name` (float32 or bfloat16) on `device`."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b  # first call: kernel selection, allocation
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
        a @ b
        runs += 1
    sync()
    elapsed = time.perf_counter() - start
    return 2 * size**3 * runs / elapsed / 1e9


def cpu_rates(work_root: Path) -> dict:
    """This CPU's float32 and bfloat16 matmul rates, measured once and recorded."""
    identity = cpu_identity()
    key = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:16]
    path = Path(work_root) / ".machine" / f"matmul-{key}.json"
    record = read_json(path)
    if isinstance(record, dict) and record.get("identity") == identity:
        return record
    rates = {name: round(measure_matmul(name), 1) for name in ("float32", "bfloat16")}
    record = {"identity": identity, "gflops": rates, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(path, record)
    from stages.console import say

    say(
        f"precision: this CPU ({identity['cpu']}, {identity['threads']} threads) multiplies matrices at "
        f"{rates['float32']:.0f} GFLOP/s in float32 and {rates['bfloat16']:.0f} in bfloat16 (recorded in {path})"
    )
    return record


def resolve(precision: str, work_root: Path) -> str:
    """bf16, fp16 or fp32: what `precision` (one of PRECISIONS) means on this machine."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    rates = cpu_rates(work_root)["gflops"]
    return "bf16" if rates["bfloat16"] >= BF16_MARGIN * rates["float32"] else "fp32"


def autocast(resolved: str):
    """A context for inference in `resolved` precision: torch.autocast on the current device, or nothing."""
    import torch

    if resolved == "fp32":
        return contextlib.nullcontext()
    device = "cuda" if _cuda() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
