"""`python -m reference_standards [DIR]`: check the data files and print counts per group."""

import sys
from pathlib import Path

from reference_standards.library import DATA_DIR, load_library


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else DATA_DIR
    library = load_library(directory)
    for problem in library.problems:
        print(problem)
    print(f"{len(library.records)} valid records, {len(library.problems)} problems")
    for group, count in library.counts_by("chemical_group").items():
        print(f"  {group:24} {count}")
    return 0 if library.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
