"""Reading a weights file (a state_dict saved with torch.save) as untrusted input.

A weights file may come from anywhere, so it is loaded without executing pickled code
(torch.load(weights_only=True)), must be a plain dict of parameter name -> tensor, and must fit
the module it is meant for exactly. Every problem is a WeightsError with a one-line message
that names the file and what is wrong with it.
"""

import hashlib
import os
import pickle
import re

import torch

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
# BatchNorm's batch counter: unused in eval, and absent from checkpoints of old PyTorch versions
# (nn.BatchNorm itself accepts them without it), so a file may lack it.
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
SHOWN = 3  # keys named per kind of problem; the rest are counted


class WeightsError(Exception):
    """A weights file that cannot be used; str() is one line naming the file and the problem."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _lfs_pointer(path: str, head: bytes) -> WeightsError:
    text = head.decode("utf-8", "replace")
    size = re.search(r"^size (\d+)", text, re.M)
    target = f" of {int(size.group(1)):,} bytes" if size else ""
    return WeightsError(
        f"{path} is a Git LFS pointer ({os.path.getsize(path)} bytes) to a file{target}, not the weights: "
        "fetch the real file (`git lfs pull` in its repository, or the copy inside the pip package)"
    )


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Loads a plain state_dict (str -> tensor) from `path` without running pickled code."""
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise WeightsError(f"{path} is empty")
    if head.startswith(LFS_POINTER_PREFIX):
        raise _lfs_pointer(path, head)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses anything but tensors and plain containers (e.g. a whole pickled
        # module, or arbitrary objects): loading those would run code from the file.
        detail = str(error).split("WeightsUnpickler error:")[-1].strip()
        raise WeightsError(
            f"{path} holds more than a plain state_dict (pickled objects or code), so it is not loaded: "
            f"{_first_line(ValueError(detail))}"
        ) from None
    except Exception as error:  # noqa: BLE001 - torch.load raises many kinds for a damaged file
        raise WeightsError(
            f"{path} is truncated or not a PyTorch weights file ({type(error).__name__}: {_first_line(error)})"
        ) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict (parameter name -> tensor)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            raise WeightsError(f"{path} is not a plain state_dict: entry {key!r} is a {kind}, not a tensor")
    return state


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def check_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str, what: str) -> None:
    """Raises WeightsError unless `state` has exactly `module`'s keys and shapes (strict)."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} is [{', '.join(map(str, state[k].shape))}], expected [{', '.join(map(str, expected[k].shape))}]"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    not_float = [k for k in expected if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} ({_named(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} ({_named(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} wrong shape{'s' * (len(wrong) > 1)} ({_named(wrong)})")
    if not_float:
        problems.append(f"{len(not_float)} non-float tensor{'s' * (len(not_float) > 1)} ({_named(not_float)})")
    if problems:
        raise WeightsError(f"{path} is not a {what} state_dict: {'; '.join(problems)}")


def load_into(module: torch.nn.Module, path: str, what: str) -> dict[str, torch.Tensor]:
    """Loads `path` into `module` strictly, after checking it fits; returns the state_dict."""
    state = load_state_dict_file(path)
    check_fits(module, state, path, what)
    module.load_state_dict(state, strict=False)  # strict in substance: check_fits allowed only optional keys
    return state
