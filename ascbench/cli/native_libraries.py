"""What to tell a user whose torch, torchaudio or torchvision cannot load its native code.

Such a failure is not a bug in the user's input or in ascbench but in the machine: a shared
library the wheel expects from the system is missing. The case met in practice: on a minimal
Linux aarch64 system (Debian's minbase, slim containers) torchaudio 2.9.1's ``libtorchaudio.so``
needs the system's OpenMP runtime ``libgomp.so.1``, which torch's aarch64 wheel bundles only
under another name; every command then died with a 100-line traceback ending in ``OSError:
Could not load this library``. The one line built here names the package, the missing library
and the fix."""

from __future__ import annotations

import re

PACKAGE_OF_PATH = re.compile(r"site-packages[/\\]([A-Za-z0-9_]+)[/\\]")
MISSING_LIBRARY = re.compile(r"([^\s:/\\]+\.so(?:\.[0-9]+)*): cannot open shared object file")
SYSTEM_PACKAGES = {
    "libgomp.so.1": "the GNU OpenMP runtime (Debian/Ubuntu: apt install libgomp1; Fedora/RHEL: dnf install libgomp)",
}
"""Libraries the pinned wheels expect from the system, and the package that provides each."""


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def native_library_problem(error: BaseException) -> str | None:
    """One line saying which native library did not load and how to get it, or None when
    ``error`` is not a shared library that failed to load (then it is a real bug: re-raise)."""
    messages = [str(e) for e in _chain(error) if isinstance(e, OSError)]
    missing = next((m.group(1) for text in messages if (m := MISSING_LIBRARY.search(text))), None)
    if missing is None:
        return None
    package = next((m.group(1) for text in messages if (m := PACKAGE_OF_PATH.search(text))), None)
    who = f"{package}'s native code" if package else "a native library"
    provider = SYSTEM_PACKAGES.get(missing)
    fix = (
        f"install {provider}"
        if provider
        else f"install the system package that provides {missing}, or reinstall torch, torchaudio and "
        "torchvision together at the versions pyproject.toml pins"
    )
    return f"{who} did not load: the system library {missing} is missing. Fix: {fix}, then run the command again."
