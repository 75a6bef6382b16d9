"""The params an API call works with: a params file or the schema's defaults, with the call's own choices, always
on the real clock (an API call happens now)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from ..config.params import Params

Duration = Union[float, str]  # seconds, or a string with its unit ("90min", "12h")


def as_text(duration: Optional[Duration]) -> Optional[str]:
    """A duration as the command line takes it: a number is seconds here, as in a params file."""
    if duration is None or isinstance(duration, str):
        return duration
    return f"{float(duration)!r}s"


def api_params(
    params: Optional[Union[str, Path]] = None,
    source: Optional[str] = None,
    region: Optional[str] = None,
    base_url: Optional[str] = None,
    trace: Optional[Union[str, Path]] = None,
    duration: Optional[Duration] = None,
    max_wait: Optional[Duration] = None,
) -> Params:
    """`params` (a file; default ./params.yaml if there is one, else the defaults) with the call's overrides, on
    the real clock. Bad input raises carbon_pipe.errors.UsageError with the one line the CLI would print."""
    from ..config.params import params_or_defaults, with_overrides

    config = params_or_defaults(None if params is None else Path(params))
    return with_overrides(
        config, sources=source, region=region, base_url=base_url, trace=None if trace is None else str(trace),
        duration=as_text(duration), slack=as_text(max_wait), clock="real",
    )
