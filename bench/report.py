"""Shared by the benchmark scripts: put a generated section into docs/benchmarks.md."""
import os


def replace_section(path, start, end, section):
    """Replaces the text between the `start` and `end` markers (inclusive) with `section`, or
    appends `section` when the markers are not there yet."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
