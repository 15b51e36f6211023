"""Finding a browser to drive: a Chromium (a path you give, Playwright's own browsers, or the system's), or
for ``real_chrome`` an installed Google Chrome."""

import os
import shutil
from pathlib import Path

#: Environment variable naming the Chromium (or Chrome) executable to use.
ENV = "SHOAL_CHROMIUM"
SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Where Google's packages install Chrome (and where Playwright's ``channel="chrome"`` looks), then its
#: names on PATH.
CHROME_PATHS = ("/opt/google/chrome/chrome",)
CHROME_NAMES = ("google-chrome-stable", "google-chrome")


def _playwright_browsers() -> list[Path]:
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    return sorted(root.glob("chromium-*/chrome-linux*/chrome"), reverse=True)


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: ``explicit``, else $SHOAL_CHROMIUM, else Playwright's, else the system's."""
    searched = []
    for candidate, where in ((explicit, "executable_path"), (os.environ.get(ENV), f"${ENV}")):
        if candidate:
            if Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return candidate
            raise FileNotFoundError(f"{where} names {candidate}, which is not an executable file")
    for path in _playwright_browsers():
        return str(path)
    searched.append("Playwright's browsers (playwright install chromium)")
    for name in SYSTEM_NAMES:
        if found := shutil.which(name):
            return found
    searched.append("PATH for " + ", ".join(SYSTEM_NAMES))
    raise FileNotFoundError(
        f"no Chromium found; searched {'; '.join(searched)}. Install one (Debian: apt-get install chromium) "
        f"or point ${ENV} or the session's executable_path at it."
    )


def find_chrome() -> str:
    """The installed Google Chrome (for ``real_chrome=True``); FileNotFoundError naming where it looked."""
    for path in CHROME_PATHS:
        if os.access(path, os.X_OK):
            return path
    for name in CHROME_NAMES:
        if found := shutil.which(name):
            return found
    raise FileNotFoundError(
        f"real_chrome=True needs Google Chrome, and none is installed here (looked at {', '.join(CHROME_PATHS)} "
        f"and on PATH for {', '.join(CHROME_NAMES)}). Install Google Chrome on the worker's machine, or drop "
        "real_chrome to use Chromium."
    )
