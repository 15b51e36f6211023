"""Loading spiders: from a file, or from the module source stored with a crawl, and describing them."""

import inspect
import logging
import sys
import traceback
import types
import uuid
from pathlib import Path
from typing import Any

from shoal.common.messages import CrawlSpec, SessionConfig
from shoal.common.names import did_you_mean
from shoal.spiders import Spider
from shoal.spiders.spider import QUOTA_ATTRIBUTES, importing

log = logging.getLogger(__name__)


class SpiderLoadError(Exception):
    """A spider file or source that does not import, or has no (or no such) Spider class."""


def describe_error(error: BaseException, filename: str) -> str:
    """``error`` as the author of the spider file ``filename`` needs it: the line of that file where it
    happened (file, line, function, source), then the reason in one line; shoal's own frames left out."""
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    root = chain[-1]
    if isinstance(root, SyntaxError):
        reason = f"{type(root).__name__}: {root.msg}"
    elif isinstance(root, SpiderLoadError):
        reason = str(root)
    else:
        reason = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    where = ""
    for e in reversed(chain):  # the innermost frame in the spider file, of the error nearest the cause
        if isinstance(e, SyntaxError) and e.filename == filename and e.lineno:
            where = f"{filename}, line {e.lineno}\n    {(e.text or '').strip()}\n"
            break
        mine = [frame for frame in traceback.extract_tb(e.__traceback__) if frame.filename == filename]
        if mine:
            frame = mine[-1]
            line = (frame.line or "").strip()
            where = f"{filename}, line {frame.lineno}, in {frame.name}\n" + (f"    {line}\n" if line else "")
            break
    return where + reason


def load_module(source: str, filename: str) -> types.ModuleType:
    """Execute spider source as a fresh module; errors carry the spider's traceback."""
    name = f"shoal_spider_{uuid.uuid4().hex[:12]}"
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        with importing(filename):
            exec(compile(source, filename, "exec"), module.__dict__)
    except Exception as e:
        del sys.modules[name]
        raise SpiderLoadError(f"{filename} failed to import: {type(e).__name__}: {e}") from e
    return module


def find_spider_class(module: types.ModuleType, name: str | None = None) -> type[Spider]:
    """The Spider subclass defined in ``module`` (by class name or spider name when several)."""
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Spider) and obj.__module__ == module.__name__
    ]
    if name is not None:
        found = [cls for cls in found if name in (cls.__name__, cls.name)]
    where = module.__file__ or module.__name__
    if not found:
        raise SpiderLoadError(f"no Spider subclass{f' named {name!r}' if name else ''} in {where}")
    if len(found) > 1:
        names = ", ".join(cls.__name__ for cls in found)
        raise SpiderLoadError(f"{where} defines several spiders ({names}); choose one with --spider NAME")
    return found[0]


def load_spider_file(path: str | Path, name: str | None = None) -> tuple[type[Spider], str]:
    """The Spider class in the file at ``path`` and the file's source."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpiderLoadError(f"cannot read spider file {path}: {e.strerror}") from None
    return find_spider_class(load_module(source, str(path)), name), source


def create_spider(cls: type[Spider], args: dict[str, Any]) -> Spider:
    """Instantiate ``cls``; arguments its ``__init__`` does not take become attributes, set before it runs.
    Quota arguments (``max_pages`` ...) always become attributes, set after it ran."""
    quotas = {k: v for k, v in args.items() if k in QUOTA_ATTRIBUTES}
    args = {k: v for k, v in args.items() if k not in quotas}
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    if not takes_any:
        known = [name for name in (*accepted, *dir(cls)) if not name.startswith("_") and name != "self"]
        for name in sorted(set(args) - set(known)):
            log.warning(
                "spider argument '%s' is neither a parameter of %s.__init__ nor an attribute of the class, so "
                "the spider may never read it%s; it is set as an attribute all the same",
                name,
                cls.__name__,
                did_you_mean(name, known),
            )
    init_args = {k: v for k, v in args.items() if takes_any or k in accepted}
    spider = cls.__new__(cls)
    spider.__dict__.update({k: v for k, v in args.items() if k not in init_args})
    spider.__init__(**init_args)
    spider.__dict__.update(quotas)
    return spider


def load_spider(source: str, filename: str, name: str | None, args: dict[str, Any]) -> Spider:
    """A spider instance from module source: its class by class or spider name, built with ``args``."""
    return create_spider(find_spider_class(load_module(source, filename), name), args)


def bare_spider(cls: type[Spider], args: dict[str, Any]) -> Spider:
    """An instance of ``cls`` with ``args`` as attributes but without running ``__init__``: what a worker
    needs to call a page action, without the spider's start-up side effects or constructor arguments."""
    spider = cls.__new__(cls)
    spider.__dict__.update(args)
    return spider


def spider_source(cls: type[Spider]) -> tuple[str, str]:
    """The source and filename of the module defining ``cls`` (empty when it has no file)."""
    module = sys.modules.get(cls.__module__)
    try:
        return inspect.getsource(module), inspect.getsourcefile(module) or "<spider>"  # type: ignore[arg-type]
    except (OSError, TypeError):
        return "", "<spider>"


def crawl_spec(crawl: str, spider: Spider, source: str, filename: str, args: dict[str, Any]) -> CrawlSpec:
    """The CrawlSpec that lets any process rebuild ``spider`` and its sessions."""
    manager = spider.session_manager
    sessions = {
        sid: SessionConfig(
            kind=manager.get(sid).kind, kwargs=manager.get(sid).wire_kwargs(spider), lazy=manager.is_lazy(sid)
        )
        for sid in manager.session_ids
    }
    return CrawlSpec(
        crawl=crawl,
        name=spider.name or "",
        class_name=type(spider).__name__,
        source=source,
        filename=filename,
        args=args,
        sessions=sessions,
        default_sid=manager.default_session_id,
    )
