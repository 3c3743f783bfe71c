"""The one base of palaestrio's errors; each area's error derives from it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class PalaestrioError(Exception):
    """Something palaestrio can name: a bad file, a component, the store, the executor."""


def single_error(
    error: BaseException, *, several: type[Exception] = PalaestrioError
) -> BaseException:
    """The one exception a caller should see instead of a group of them.

    KeyboardInterrupt wins (the user asked to stop); then the only error that is not
    trio's Cancelled; then, of several, the only one that is not palaestrio's (the
    caller's own error, which palaestrio's reactions to it would hide); otherwise one
    error of class `several` naming them all, with the group as its cause.
    """
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = list(_leaves(error))
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    real = [leaf for leaf in leaves if not _is_cancelled(leaf)]
    if not real:
        return leaves[0]
    if len(real) == 1:
        return real[0]
    users = [leaf for leaf in real if not isinstance(leaf, PalaestrioError)]
    if len(users) == 1:
        return users[0]
    combined = several("; ".join(f"{type(e).__name__}: {e}" for e in real))
    combined.__cause__ = error
    return combined


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _is_cancelled(error: BaseException) -> bool:
    # By name: this module must not import trio (validation imports it).
    return type(error).__name__ == "Cancelled" and type(error).__module__.startswith("trio")


@contextmanager
def collapsed_groups() -> Iterator[None]:
    """Re-raises an exception group leaving the block as `single_error` of it."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = single_error(group)
        raise error from error.__cause__  # its own cause, not the group's context
