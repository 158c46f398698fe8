"""User-facing errors: one line that names the file, flag or value and what would be valid."""


class NeuromemError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""


def shown_path(path, limit: int = 160) -> str:
    """A path as an error line shows it: whole up to `limit` characters, else its start and end around an ellipsis."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2 - 2]}...{text[-(limit // 2 - 1):]}"


def check_writable_file(path, flag: str = "--out", example: str = "out"):
    """Before any work: `path` can be written as a file (its folder is created if missing). Raises a
    NeuromemError naming the flag, the path and why not (a directory there, a read-only file system...)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path).expanduser()
    if path.is_dir():
        raise NeuromemError(f"{flag} {path}: is a directory; give a file path, e.g. {path / example}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.write-test.")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise NeuromemError(f"{flag} {path}: cannot write there (a file is in the way of its folder {path.parent}); "
                            "choose a writable path") from None
    except OSError as error:
        raise NeuromemError(f"{flag} {shown_path(path)}: cannot write there ({error.strerror or error}); choose a writable "
                            "path") from None
    return path
