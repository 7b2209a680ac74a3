"""The man page and bash completion cover every command and option, and completion
completes device names in a real bash."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN = open(os.path.join(ROOT, "man", "dmctl.8")).read()
COMP = open(os.path.join(ROOT, "completions", "dmctl.bash")).read()
README = open(os.path.join(ROOT, "README.md")).read()


def man_has(word):
    return word.replace("-", "\\-") in MAN


def _commands():
    from dmctl.cli.main import COMMANDS, EXTENSIONS
    return [c[0] for c in COMMANDS] + list(EXTENSIONS)


def _long_options():
    from dmctl.cli.main import LONGOPTS
    return [name for name, _kind in LONGOPTS]


def _click_subcommands():
    import importlib
    from dmctl.cli.main import EXTENSIONS
    out = []
    for name, (target, _s) in EXTENSIONS.items():
        mod, attr = target.split(":")
        try:
            grp = getattr(importlib.import_module(mod), attr)
        except ImportError:
            continue
        cmds = getattr(grp, "commands", None)
        if cmds is None:
            continue
        for sub, cmd in cmds.items():
            opts = [o for p in cmd.params for o in getattr(p, "opts", []) if o.startswith("--")]
            out.append((name, sub, opts))
    return out


@pytest.mark.parametrize("cmd", _commands())
def test_every_command_is_in_the_man_page_and_completion(cmd):
    assert man_has(cmd), cmd
    assert re.search(r"\b%s\b" % re.escape(cmd), COMP), cmd


@pytest.mark.parametrize("opt", _long_options())
def test_every_option_is_in_the_man_page_and_completion(opt):
    assert man_has("--" + opt), opt
    assert "--" + opt in COMP.split() or ("--" + opt) in COMP, opt


@pytest.mark.parametrize("ext,sub,opts", _click_subcommands())
def test_every_extension_subcommand_and_option_is_documented(ext, sub, opts):
    assert man_has("%s %s" % (ext, sub)), (ext, sub)
    assert re.search(r"\b%s\b" % re.escape(sub), COMP), sub
    for o in opts:
        if o == "--help":
            continue
        assert man_has(o), (ext, sub, o)
        assert o in COMP, (ext, sub, o)
        assert o in README or ext in README, (ext, sub, o)


def test_replay_log_options_are_documented():
    from dmctl.tools import replay_log
    names = [o[0] for o in replay_log._LONGOPTS]
    for n in names:
        assert man_has("--" + n), n
        assert "--" + n in COMP, n


def _bash_complete(words, cword, env):
    script = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _dmctl; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % (
                  os.path.join(ROOT, "completions", "dmctl.bash"),
                  " ".join("'%s'" % w for w in words), cword))
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    return [l for l in p.stdout.splitlines() if l]


@pytest.fixture
def bash_env(tmp_path, sim_dir):
    wrapper = tmp_path / "dmctl"
    wrapper.write_text("#!/bin/sh\nexec %s -m dmctl \"$@\"\n" % sys.executable)
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    env["DMCTL"] = str(wrapper)
    from dmctl.backend.sim import SimMapper
    from dmctl.backend.base import TargetLine
    m = SimMapper(str(sim_dir))
    for n in ("alpha", "beta", "gamma"):
        m.create(n)
        m.load(n, [TargetLine(0, 8, "zero", "")])
        m.resume(n)
    m.close()
    return env


def test_completion_completes_device_names_in_bash(bash_env):
    assert _bash_complete(["dmctl", "remove", ""], 2, bash_env) == ["alpha", "beta", "gamma"]
    assert _bash_complete(["dmctl", "status", "b"], 2, bash_env) == ["beta"]
    assert _bash_complete(["dmctl", "-v", "info", "g"], 3, bash_env) == ["gamma"]
    assert _bash_complete(["dmctl", "message", "alpha", ""], 3, bash_env) == ["0"]
    assert _bash_complete(["dmctl", "message", "alpha", "0", "check"], 4, bash_env) == ["checkpoint"]


def test_completion_completes_commands_options_and_values(bash_env):
    assert "remove_all" in _bash_complete(["dmctl", "remo"], 1, bash_env)
    assert _bash_complete(["dmctl", "--noudevs"], 1, bash_env) == ["--noudevsync"]
    assert sorted(_bash_complete(["dmctl", "ls", "--target", "l"], 3, bash_env)) == ["linear", "log-writes"]
    assert _bash_complete(["dmctl", "--manglename", ""], 2, bash_env) == ["none", "hex", "auto"]
    assert "ascii" in _bash_complete(["dmctl", "ls", "--tree", "-o", ""], 4, bash_env)
    assert _bash_complete(["dmctl", "io", "w"], 2, bash_env) == ["write"]
    assert _bash_complete(["dmctl", "io", "write", "al"], 3, bash_env) == ["alpha"]
