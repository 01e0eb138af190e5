"""Library messages in the app's words: the widget to change instead of the CLI option to pass.

The library names CLI options in its fixes (``lower --min-valid``); a web user has sliders and
boxes instead. :func:`in_app_words` replaces each option a page knows (its ``words``) and the
generic ones below; an option with no widget in the app says that the command line has it.
No Streamlit here, so tests can check the wording.
"""

from __future__ import annotations

import re

#: Options every page may meet in a message, and what the app calls them.
GENERIC_WORDS = {
    "--workspace folder": "workspace (start one from the Home page)",
    "--workspace": "workspace",
    "--wait": "waiting for the running job",
    "--stac-url": "the 'STAC API URL' field",
    "--max-cloud": "the 'Max scene cloud cover' slider",
    "--chip-size": "the 'Chip size (px)' box",
    "--collection": "the 'Collection' field",
}
#: The upload form (Area page): its minimum-valid slider and the words for the options a message may name.
UPLOAD_MIN_VALID = "Minimum valid pixels per chip (%)"
UPLOAD_WORDS = {
    "--min-valid": f"the '{UPLOAD_MIN_VALID}' slider",
    "--chip-size": "the 'Chip size (px)' box",
    "--date": "the 'Acquisition date' field",
    "--sensor": "the 'Sensor' box",
}
#: ``--option value`` with an optional value (a number or a comma list).
_VALUE = r"(?:\d[\d.]*|[A-Za-z0-9_]+(?:,[A-Za-z0-9_]+)+|[A-Z]+\d+[A-Z]?)"  # a number, a list, a band name
_OPTION = re.compile(rf"--[a-z][a-z-]*(?: folder)?(?: {_VALUE}(?![\w-]))?")
_COMMAND = re.compile(r"`clay-explore ([a-z]+)[^`]*`")
#: Pages that do what a CLI command does.
COMMAND_PAGES = {
    "embed": "the Embed page",
    "fit": "the Reconstructions page",
    "evaluate": "the Reconstructions page",
    "fetch": "the Area page",
    "ingest": "the Area page (Upload)",
    "demo": "the Home page",
    "project": "the Projections page",
    "export": "the Export page",
}


def in_app_words(text: str, words: dict[str, str] | None = None) -> str:
    """``text`` with CLI options and commands replaced by the app's widgets and pages."""
    table = {**GENERIC_WORDS, **(words or {})}

    def option(m: re.Match[str]) -> str:
        found = m.group(0)
        for flag in sorted(table, key=len, reverse=True):  # longest first: "--workspace folder" before "--workspace"
            if found == flag or found.startswith(flag + " "):
                value = found[len(flag) :].strip()
                return table[flag] + (f" set to {value}" if value and not flag.endswith("folder") else "")
        return f"{found} (a command-line option; run `clay-explore` for it)"

    text = _COMMAND.sub(lambda m: COMMAND_PAGES.get(m.group(1), m.group(0)), text)
    return _OPTION.sub(option, text)
