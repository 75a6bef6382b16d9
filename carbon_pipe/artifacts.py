"""Atomic artifact writes: a reader (or a kill) sees the old file or the new one, never a torn one.

Text, JSON and CSV are redacted on the way out (secrets.py): the last line of defence for a credential that
reached an output some other way. Bytes are written as given (checkpoints, models, machine-read markers). CSV text
cells are also made inert for spreadsheets (`inert_cell`), since job ids and metric names come from users.
Every CSV file read (a user's trace or jobs, a stage's table) goes through `read_csv`: one line for each way it can
be unreadable.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, Strict, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import PydanticCustomError

from .errors import ArtifactError, Busy, CarbonPipeError, UsageError
from .secrets import redact, redact_data, redactor
from .timeutil import iso, parse_instant

_UMASK = os.umask(0)  # read once: the mode a plain open() would give new files
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`. Any OSError on the way
    (a read-only folder, a full disk) is one ArtifactError naming the file, and the old file stays as it was."""
    target = Path(path)
    tmp: Optional[Path] = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a writer that was killed
            with contextlib.suppress(OSError):  # not ours to remove: harmless, it is never read
                stale.unlink(missing_ok=True)
        # Named before it is made: a signal landing just after it exists still finds it to remove.
        tmp = target.with_name(f".{target.name}.{os.urandom(8).hex()}.tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; artifacts are ordinary files
        os.replace(tmp, target)
    except OSError as exc:  # disk full, file too large, read-only: one line, and the old file stays
        kept = "the previous version is kept" if os.path.exists(target) else "nothing was written"
        raise ArtifactError(f"cannot write {target}: {exc.strerror or exc}; {kept}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


LOCK_NAME = ".lock"  # in the folder a command holds while it runs


@contextlib.contextmanager
def holding(folder: str | Path, what: str) -> Iterator[None]:
    """Hold `folder` for this process while the block runs: an OS lock (flock) on its lock file, which the kernel
    releases when the block ends or the process dies in any way (SIGKILL included), so no stale lock outlives its
    holder. A second holder is refused at once, in one line naming the first one's pid (written in the file). The
    lock file, and the folders made for it, go when the block ends: a refused command leaves nothing behind."""
    folder = Path(folder)
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        handle = _lock(folder / LOCK_NAME, what)
    except OSError as exc:
        raise ArtifactError(f"cannot write {folder / LOCK_NAME}: {exc.strerror or exc}; nothing was written") from None
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while held: a waiter that opened it sees and retries
            (folder / LOCK_NAME).unlink()
            for empty in made:  # deepest first; a folder something else was written to stays
                empty.rmdir()
        os.close(handle)


def _lock(path: Path, what: str) -> int:
    """An open, locked handle on the lock file at `path` (made if need be), or Busy naming the holder."""
    import fcntl

    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # its folder went with the last holder's lock: make both again
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(handle, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(handle)
            raise Busy(
                f"{what}: {path.parent} is in use by process {pid} (it holds {path}): wait for it to end or stop "
                "it, then run again; two at once would mix their state"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(handle).st_ino:
                return handle
        os.close(handle)  # locked a file its holder removed as it let go: lock the one there now


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISSOCK, "a socket"))  # fmt: skip


def input_file(path: str | Path, kind: str) -> Path:
    """`path` if it is a regular file (a link to one is too); else one line, exit 2, before a byte is read: a FIFO
    would block, /dev/zero never ends, a folder is a traceback in whichever reader meets it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {kind} file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {kind} file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: not a {kind} file ({_kind(mode)})")
    return Path(path)


def output_file(path: str | Path, kind: str) -> Path:
    """`path` if a file may be written there: absent, a regular file or a link (replaced, as every artifact is).
    Anything else is one line, exit 2, before any work: renaming over /dev/null would replace the device."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return Path(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the {kind} file there ({exc.strerror or exc})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(f"{path}: not a file to write the {kind} to ({_kind(mode)})")
    return Path(path)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save through memory: saving straight to the temporary file would embed its random name in the archive."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, redact(text).encode("utf-8"))


def json_text(data: Any) -> str:
    """JSON as every file and `--json` answer gets it: strings redacted, numbers untouched (a secret's digits inside
    a number are not that secret), and never NaN or Infinity, which strict readers refuse and which mean a number
    went wrong upstream: one is a ValueError naming its key."""
    data = redact_data(data)
    try:
        return json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:
        found = _non_finite(data, "")
        if found is None:  # not a number's fault (a circular reference): as it was
            raise
        raise ValueError(f"{found[0]} is {found[1]}, and JSON holds no NaN or Infinity") from None


def _non_finite(data: Any, key: str) -> Optional[tuple[str, float]]:
    """The first non-finite float in `data` and its key path (`training_metrics.final_loss`, `chunks.0.end`)."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (key or "the value", data)
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, (list, tuple)) else ()
    for name, value in items:
        found = _non_finite(value, f"{key}.{name}" if key else str(name))
        if found is not None:
            return found
    return None


def write_json(path: str | Path, data: Any) -> None:
    """Refused, with nothing written, if a number in `data` is not finite."""
    try:
        text = json_text(data)
    except ValueError as exc:
        raise ArtifactError(f"cannot write {path}: {exc}; nothing was written") from None
    write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """A JSON file carbon-pipe wrote (an artifact, the queue): anything but a regular file in its place is refused
    before it is opened, as a FIFO would block the reader forever."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise ArtifactError(f"{path} is not a file ({_kind(mode)}): remove it and run the step that writes it")
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: run the stage that writes it first (dvc repro)") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


def read_csv(
    path: str | Path, kind: str, error: type[CarbonPipeError] = UsageError, fix: str = "", **options: Any
) -> Any:
    """A CSV file as a pandas DataFrame (`options` go to pandas.read_csv). Each way it can be unreadable is one
    `error` naming the file, with `fix` after it when given (what to run again, for a file a stage wrote): missing,
    not a regular file (refused before it is opened: a FIFO would block), unreadable, not CSV, or a row with more
    fields than the header, named by its line: pandas would take the first column as an index and shift the rest,
    so its own error would blame the column beside the one at fault."""
    import warnings

    import pandas as pd

    def failure(problem: str) -> CarbonPipeError:
        return error(f"{problem}: {fix}" if fix else problem)

    try:
        checked = input_file(path, kind)
    except UsageError as exc:
        raise failure(str(exc)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(checked, index_col=False, **options)
    except (pd.errors.ParserWarning, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        long_row = None if isinstance(exc, (pd.errors.EmptyDataError, UnicodeDecodeError)) else _long_row(checked)
        if long_row is not None:
            raise failure(f"{checked}: row {long_row}: more fields than the header has columns") from None
        raise failure(f"{checked}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    except OSError as exc:  # a file we may not read
        raise failure(f"{checked}: cannot read the {kind} file ({exc.strerror or exc})") from None


def _long_row(path: Path) -> Optional[int]:
    """The line of the first row with more fields than the header (the header is line 1), if there is one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            width = len(next(rows, []))
            return next((rows.line_num for row in rows if len(row) > width), None)
    except (csv.Error, UnicodeDecodeError):
        return None


def reason(exc: Exception) -> str:
    """What is wrong with a file an earlier stage wrote, from the error reading it raised: `no 'rule'`, or the
    error's first line (for one-line messages that name the file)."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args else "a key is missing"
    if isinstance(exc, AttributeError) and getattr(exc, "name", None):
        return f"no {exc.name!r}"
    return (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]


# A spreadsheet reads a cell starting with one of these as a formula (=cmd|' /C calc'!A0, @SUM(...), +1-2), or
# strips the tab or carriage return and reads what follows as one (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(value: Any, clean: Callable[[str], str] = redact) -> Any:
    """A CSV cell as written: text redacted (by `clean`), and text a spreadsheet would run as a formula prefixed
    with a quote (shown as text, never evaluated). Numbers stay numbers, negative ones included."""
    if not isinstance(value, str):
        return value
    text = clean(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_rows(path: str | Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> int:
    """Write a CSV row by row (`rows` may be a generator: nothing is held whole), every cell through inert_cell;
    the number of rows written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        clean = redactor()
        writer.writerow([inert_cell(name, clean) for name in header])
        for row in rows:
            writer.writerow([inert_cell(cell, clean) for cell in row])
            count += 1
    return count


def write_csv(path: str | Path, frame: "Any") -> None:
    """Write a pandas DataFrame without its index: its column names and text cells through inert_cell, numbers
    untouched."""
    from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

    # Text is object or (pandas 3) str dtype: everything but numbers and times.
    text_columns = [
        name for name in frame.columns if not (is_numeric_dtype(frame[name]) or is_datetime64_any_dtype(frame[name]))
    ]
    frame, clean = frame.copy(), redactor()
    for name in text_columns:
        frame[name] = frame[name].map(lambda cell: inert_cell(cell, clean))
    frame.columns = [inert_cell(str(name), clean) for name in frame.columns]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# Typed artifacts: every JSON file a stage hands to another has one pydantic model (a subclass of ArtifactModel),
# written by `write_model` and read by `read_model`, which is the one place its keys are checked.

FROM_FILE = {"from_file": True}  # validation context of read_model: instants must be ISO text there


def _instant(value: Any, handler: Any, info: ValidationInfo) -> float:
    """An instant: epoch seconds in code, ISO-8601 text in the file (a number there is refused: whose epoch?)."""
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            raise PydanticCustomError("time", "not a time") from None
    if (info.context or {}).get("from_file") or isinstance(value, bool):
        raise PydanticCustomError("time", "not a time")
    return handler(value)


# An instant (epoch seconds); ISO-8601 UTC text in the JSON.
Instant = Annotated[float, WrapValidator(_instant), PlainSerializer(iso, when_used="json")]
Number = Annotated[float, Strict()]  # a finite number; text that looks like one is refused
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]


class ArtifactModel(BaseModel):
    """One artifact (or a section of one): frozen, by the names of its JSON keys or its fields, numbers finite."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, allow_inf_nan=False, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The record as its file holds it."""
        return self.model_dump(mode="json", by_alias=True)


Model = TypeVar("Model", bound=ArtifactModel)

_EXPECTED = {"float": "a number", "int": "a whole number", "string": "text", "bool": "true or false",
             "time": "a time", "dict": "an object", "list": "a list", "tuple": "a list"}  # fmt: skip


def problem(exc: ValidationError) -> str:
    """The first thing wrong with a record, in a few words: `rule is missing`, `now is 5, not a time`."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the record"
    kind, given = error["type"], error.get("input")
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        return f"{where} is not a key of this file"
    if kind in ("model_type", "model_attributes_type", "dict_type", "dataclass_type") and not error["loc"]:
        return f"a JSON {_json_type(given)}, not an object"
    expected = next((text for prefix, text in _EXPECTED.items() if kind.startswith(prefix)), error["msg"])
    if kind == "literal_error":
        expected = str((error.get("ctx") or {}).get("expected"))
    return f"{where} is {'null' if given is None else repr(given)}, not {expected}"[:200]


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_model(path: str | Path, model: type[Model], what: str, again: str) -> Model:
    """The artifact at `path` as `model`; a file that is not one (missing, garbled, edited, written by an older
    version) is one line naming it, what is wrong, and what to run again."""
    data = read_json(path)
    try:
        return model.model_validate(data, context=FROM_FILE)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: not {what} ({problem(exc)}): {again}") from None


def write_model(path: str | Path, record: ArtifactModel) -> None:
    write_json(path, record.to_json())
