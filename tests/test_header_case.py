"""Windows headers spelled as the Windows SDK spells them (toolchain.compile.header_case):
which included names get a link, and how the flags reach cc-rs. The build through it is
test_corpus's cpp crate on windows-gnu (its words.cpp includes <Windows.h> and <PowrProf.h>)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.compile.header_case import misspelled_headers, search_folder_flags

TRIPLE = "x86_64-pc-windows-gnu"


def test_only_names_the_folder_has_in_another_case_are_linked(tmp_path: Path) -> None:
    system = tmp_path / "include"
    (system / "GL").mkdir(parents=True)
    for name in ("windows.h", "powrprof.h", "stdio.h", "GL/gl.h"):
        (system / name).write_text("")
    crate = tmp_path / "crate"
    crate.mkdir()
    (crate / "Local.h").write_text("")
    source = crate / "os.hpp"
    source.write_text(
        "#include <Windows.h>\n"
        "  #  include <PowrProf.h>  // as MSVC code spells it\n"
        "#include <stdio.h>\n"  # as the folder has it: nothing to do
        '#include "Local.h"\n'  # the crate's own header
        "#include <gl/GL.h>\n"
        "#include <NotThere.h>\n"  # no header in any case: the compiler says so itself
        "#include <../escape.h>\n"
    )
    assert misspelled_headers([source], system) == {
        "Windows.h": "windows.h",
        "PowrProf.h": "powrprof.h",
        "gl/GL.h": "GL/gl.h",
    }


@pytest.mark.parametrize(
    ("set_by_user", "expected"),
    [
        ({}, {"CFLAGS_x86_64_pc_windows_gnu": "-idirafter /l", "CXXFLAGS_x86_64_pc_windows_gnu": "-idirafter /l"}),
        # cc-rs reads the first spelling it finds: the user's value is kept, the folder added to it
        (
            {"CFLAGS": "-O1", "CXXFLAGS_x86_64-pc-windows-gnu": "-DX"},
            {
                "CFLAGS_x86_64_pc_windows_gnu": "-O1 -idirafter /l",
                "CXXFLAGS_x86_64-pc-windows-gnu": "-DX -idirafter /l",
            },
        ),
    ],
)
def test_the_flags_keep_what_the_user_set(
    monkeypatch: pytest.MonkeyPatch, set_by_user: dict[str, str], expected: dict[str, str]
) -> None:
    for name in ("CFLAGS", "CXXFLAGS"):
        for spelling in (f"{name}_{TRIPLE}", f"{name}_{TRIPLE.replace('-', '_')}", f"TARGET_{name}", name):
            monkeypatch.delenv(spelling, raising=False)
    for name, value in set_by_user.items():
        monkeypatch.setenv(name, value)
    assert search_folder_flags(TRIPLE, Path("/l")) == expected
