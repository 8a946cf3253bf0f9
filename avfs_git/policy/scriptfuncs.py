"""What each language's functions do, for :mod:`.scriptcode`: per language (JavaScript,
Perl, Ruby, PHP), a function's name -> what it does (delete, write, read, open, run a shell
line or a program, run code built at run time), the receivers it must be called on (``fs``,
``File``, ``FileUtils``...; None: any or none), and which of its arguments are paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# name -> (kind, receivers (None: any or none), which arguments are its paths)
# kinds: delete | write | read | shell (a shell command line) | argv (a program and its
# arguments) | run (either: one string is a shell line, a list is argv) | code (code
# built at run time) | open (perl/ruby/php open: the mode says)
Spec = tuple[str, frozenset[str] | None, str]
_ANY: Final = None


def _r(*names: str) -> frozenset[str]:
    return frozenset(names)


FS_JS: Final = _r("fs", "fsp", "promises", "fse", "Deno", "Bun")
_JS: Final[Mapping[str, Spec]] = MappingProxyType(
    {
        **{
            n: ("delete", _ANY, "all")
            for n in ("rmSync", "rmdirSync", "unlinkSync", "removeSync", "emptyDirSync")
        },
        **{n: ("delete", FS_JS, "all") for n in ("rm", "rmdir", "unlink", "remove", "emptyDir")},
        **{
            n: ("write", _ANY, "first")
            for n in (
                "writeFileSync",
                "appendFileSync",
                "mkdirSync",
                "truncateSync",
                "utimesSync",
                "createWriteStream",
                "writeTextFile",
                "writeTextFileSync",
                "mkdirpSync",
                "outputFileSync",
                "chmodSync",
                "chownSync",
                "lchownSync",
                "lutimesSync",
                "ensureDirSync",
                "ensureFileSync",
            )
        },
        **{
            n: ("write", FS_JS, "first")
            for n in (
                "writeFile",
                "appendFile",
                "mkdir",
                "truncate",
                "utimes",
                "chmod",
                "chown",
                "lchown",
                "create",
                "createSync",
                "ensureDir",
                "ensureFile",
                "outputFile",
                "write",
            )
        },
        **{n: ("write", _ANY, "all") for n in ("renameSync", "moveSync")},
        **{n: ("write", FS_JS, "all") for n in ("rename", "move")},
        **{
            n: ("write", _ANY, "last")
            for n in ("copyFileSync", "cpSync", "symlinkSync", "linkSync", "copySync")
        },
        **{n: ("write", FS_JS, "last") for n in ("copyFile", "cp", "symlink", "link", "copy")},
        **{n: ("open", FS_JS, "first") for n in ("openSync", "open")},
        **{
            n: ("read", _ANY, "first")
            for n in ("readFileSync", "readdirSync", "createReadStream", "readTextFile", "readTextFileSync")
        },
        **{n: ("read", FS_JS, "first") for n in ("readFile", "readdir", "file")},
        **{n: ("shell", _ANY, "first") for n in ("execSync",)},
        **{n: ("shell", _r("child_process", "cp", "childProcess", "proc"), "first") for n in ("exec",)},
        **{
            n: ("argv", _ANY, "first")
            for n in ("spawnSync", "execFileSync", "spawn", "execFile", "Command", "run", "fork")
        },
        **{
            n: ("code", _ANY, "")
            for n in (
                "eval",
                "Function",
                "require",
                "import",
                "getBuiltinModule",
                "createRequire",
                "setTimeout",
                "setInterval",
                "setImmediate",
                "binding",
                "dlopen",
                "runInThisContext",
                "runInNewContext",
                "runInContext",
                "compileFunction",
                "Script",
                "WebAssembly",
                "Worker",
                "_load",
                "$",
            )
        },
    }
)
# functions that load a module by name: a literal name is read, a computed one is not
LOADERS: Final = frozenset({"require", "import", "getBuiltinModule", "createRequire"})
JS_SPAWN_NEEDS: Final = frozenset({"spawn", "execFile", "fork", "run", "Command"})  # generic names

_PERL: Final[Mapping[str, Spec]] = MappingProxyType({
    **{n: ("delete", _ANY, "all") for n in ("unlink", "rmdir", "rmtree", "remove_tree", "File::Path::rmtree", "File::Path::remove_tree")},
    **{n: ("write", _ANY, "all") for n in ("mkdir", "make_path", "mkpath", "rename", "truncate", "move", "mv", "File::Copy::move")},
    **{n: ("write", _ANY, "rest") for n in ("chmod", "chown", "utime")},
    **{n: ("write", _ANY, "last") for n in ("symlink", "link", "copy", "cp", "File::Copy::copy")},
    **{n: ("open", _ANY, "") for n in ("open", "sysopen")},
    **{n: ("read", _ANY, "first") for n in ("opendir",)},
    **{n: ("run", _ANY, "all") for n in ("system", "exec")},
    **{n: ("code", _ANY, "") for n in ("eval", "do", "require", "syscall", "CORE::GLOBAL", "DynaLoader", "XSLoader", "Inline", "can", "goto", "AUTOLOAD")},
})  # fmt: skip

FU: Final = _r("FileUtils", "FU")
_RUBY: Final[Mapping[str, Spec]] = MappingProxyType({
    **{n: ("delete", _r("File", "Dir", "FileUtils", "FU", "Pathname"), "all") for n in ("delete", "unlink")},
    **{n: ("delete", _ANY, "all") for n in ("rm", "rm_f", "rm_r", "rm_rf", "rmtree", "remove_dir", "remove_entry", "remove_entry_secure", "remove_file", "rmdir", "safe_unlink")},
    **{n: ("delete", FU, "all") for n in ("remove",)},
    **{n: ("write", _r("File", "IO"), "first") for n in ("write", "binwrite", "truncate", "new")},
    **{n: ("write", _ANY, "all") for n in ("mkdir_p", "makedirs", "mkpath", "touch")},
    **{n: ("write", _r("Dir", "FileUtils", "FU"), "all") for n in ("mkdir",)},
    **{n: ("write", _r("File", "FileUtils", "FU"), "all") for n in ("rename", "mv", "move")},
    **{n: ("write", _r("File", "FileUtils", "FU"), "last") for n in ("cp", "copy", "cp_r", "copy_file", "ln", "ln_s", "ln_sf", "symlink", "link", "install")},
    **{n: ("write", _r("File", "FileUtils", "FU"), "rest") for n in ("chmod", "chown", "chmod_R", "chown_R")},
    **{n: ("open", _ANY, "") for n in ("open",)},
    **{n: ("read", _r("File", "IO", "Dir"), "first") for n in ("read", "readlines", "foreach", "binread", "entries", "children", "each_child")},
    **{n: ("run", _ANY, "all") for n in ("system", "exec", "spawn")},
    **{n: ("shell", _r("IO", "Open3"), "first") for n in ("popen", "popen2", "popen3", "popen2e", "capture2", "capture2e", "capture3", "pipeline")},
    **{n: ("code", _ANY, "") for n in ("eval", "instance_eval", "class_eval", "module_eval", "instance_exec", "class_exec", "send", "__send__", "public_send", "method", "define_method", "const_get", "instance_variable_get", "Fiddle", "DL", "syscall", "load", "require", "require_relative", "binding", "ObjectSpace")},
})  # fmt: skip

_PHP: Final[Mapping[str, Spec]] = MappingProxyType({
    **{n: ("delete", _ANY, "all") for n in ("unlink", "rmdir")},
    **{n: ("write", _ANY, "first") for n in ("file_put_contents", "mkdir", "touch", "chmod", "chown", "chgrp", "tempnam", "lchown", "lchgrp")},
    **{n: ("write", _ANY, "all") for n in ("rename",)},
    **{n: ("write", _ANY, "last") for n in ("copy", "symlink", "link", "move_uploaded_file")},
    **{n: ("open", _ANY, "") for n in ("fopen", "SplFileObject", "gzopen")},
    **{n: ("read", _ANY, "first") for n in ("file_get_contents", "file", "readfile", "scandir", "glob", "opendir", "parse_ini_file")},
    **{n: ("shell", _ANY, "first") for n in ("system", "exec", "shell_exec", "passthru", "popen", "proc_open")},
    **{n: ("argv", _ANY, "first") for n in ("pcntl_exec",)},
    **{n: ("code", _ANY, "") for n in ("eval", "assert", "create_function", "call_user_func", "call_user_func_array", "forward_static_call", "forward_static_call_array", "include", "include_once", "require", "require_once", "preg_replace_callback", "array_map", "array_walk", "array_filter", "usort", "uasort", "uksort", "register_shutdown_function", "ReflectionFunction", "dl", "ffi", "FFI", "extract", "parse_str", "putenv", "mail", "mb_send_mail", "ini_set")},
})  # fmt: skip
SPECS: Final = MappingProxyType({"js": _JS, "perl": _PERL, "ruby": _RUBY, "php": _PHP})
