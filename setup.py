"""Build hook: the wheel ships the default rules and the notebooks.

They stay where people edit them, at the top of the repository (``rules/``, ``notebooks/``);
``build_py`` copies them into ``workbench/_data/`` of the build, so there is one source and no
committed duplicate. ``workbench init`` (and the first ``workbench up`` in a directory without
rules) copies them out of the installed package (:mod:`workbench.cli.init_cmd`). Editable
installs skip the copy: there the package finds the repository's own directories.
Everything else is declared in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# (directory at the top of the repository, files copied into workbench/_data/<directory>/)
SHIPPED = (("rules", "*.yaml"), ("notebooks", "*.ipynb"))


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for directory, pattern in SHIPPED:
            files = sorted((HERE / directory).glob(pattern))
            if not files:
                # A wheel without its rules installs fine and fails at `workbench up`: refuse.
                raise SystemExit(f"error: no {pattern} in {HERE / directory}: cannot build")
            target = Path(self.build_lib) / "workbench" / "_data" / directory
            target.mkdir(parents=True, exist_ok=True)
            for path in files:
                shutil.copyfile(path, target / path.name)


setup(cmdclass={"build_py": BuildWithData})
