"""Every command line answers a user mistake (a bad argument, a bad environment value, an unusable
path, nothing matched) with one line on stderr and a nonzero exit, before any work, never a traceback."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAINS = {"unirep_lite.recipes": "unirep_lite.recipes.__main__", "unirep_lite.data": "unirep_lite.data.__main__"}


def file_in(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    return f


# (command module, argv, environment, what the line says); {tmp}/{file} are filled in per test
CASES = [
    ("unirep_lite.recipes", ["digits", "--seed", "-1"], {}, "--seed: expected an integer from 0"),
    ("unirep_lite.recipes", ["digits", "--epochs", "0"], {}, "--epochs: expected a positive number"),
    ("unirep_lite.recipes", ["imagenet"], {}, "unknown recipe 'imagenet'"),
    ("unirep_lite.recipes", ["digits"], {"UNIREP_SIZE": "huge"}, "UNIREP_SIZE must be one of"),
    ("unirep_lite.recipes", ["digits", "--fast"], {"UNIREP_DEVICE": "gpu7"}, "UNIREP_DEVICE must be a torch device"),
    ("unirep_lite.recipes", ["digits", "--fast", "--epochs", "1"], {"UNIREP_DATA": "{file}"},
     "cannot be used"),
    ("unirep_lite.data", ["build", "digits"], {"UNIREP_DATA": "{file}"}, "cannot be used"),
    ("unirep_lite.data", ["build"], {"UNIREP_SIZE": "tiny"}, "UNIREP_SIZE must be one of"),
    ("unirep_lite.bench", ["--min-time", "nan"], {}, "--min-time must be finite numbers >= 0"),
    ("unirep_lite.bench", ["--accuracy", "--epochs", "0"], {}, "--epochs: expected a positive number"),
    ("unirep_lite.bench", ["--device", "gpu"], {}, "--device: expected cpu, cuda"),
    ("tools.course", ["run", "--only", "zzz"], {}, "no notebook name contains any of ['zzz']"),
    ("tools.course", ["plan"], {"UNIREP_SIZE": "huge"}, "UNIREP_SIZE must be one of"),
    ("tools.course", ["run", "--only", "01", "--out", "{file}"], {}, "is a file, not a folder"),
    ("unirep_lite.pretrained", ["download", "Z"], {}, "variant must be one of A, F, P, N"),
    ("unirep_lite.pretrained", ["download"], {}, "the following arguments are required: VARIANT"),
    ("unirep_lite.pretrained", ["download", "A", "--cache-dir", "{file}"], {}, "is a file, not a folder"),
    ("unirep_lite.pretrained", ["download", "A", "F", "--url", "http://127.0.0.1:9/a.pth"], {},
     "--url fetches one file"),
    ("unirep_lite.pretrained", ["download", "A", "--url", "ftp://example.org/a.pth"], {}, "url must be an http"),
    ("unirep_lite.pretrained", ["download", "A", "--cache-dir", "{tmp}", "--url", "http://127.0.0.1:9/a.pth"], {},
     "failed after 0 bytes"),  # nothing listens on the loopback's port 9: refused, never the real network
    ("unirep_lite.pretrained", ["list"], {"UNIREP_PRETRAINED": "{file}"}, "is a file, not a folder"),
]


@pytest.mark.parametrize("module, argv, environ, message", CASES,
                         ids=[f"{c[0].split('.')[-1]}:{' '.join(c[1])}:{','.join(c[2])}" for c in CASES])
def test_a_user_mistake_is_one_line_and_a_nonzero_exit(module, argv, environ, message, tmp_path, monkeypatch,
                                                       capsys):
    fill = {"tmp": str(tmp_path), "file": str(file_in(tmp_path))}
    for k, v in environ.items():
        monkeypatch.setenv(k, v.format(**fill))
    cli = importlib.import_module(MAINS.get(module, module))
    with pytest.raises(SystemExit) as exit_:
        code = cli.main([a.format(**fill) for a in argv])
        raise SystemExit(code)  # tools.course returns its exit code
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err.strip() or str(exit_.value.code)
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2, err  # argparse adds its usage line; nothing else


def test_as_a_process_there_is_no_traceback(tmp_path):
    env = dict(os.environ, UNIREP_DATA=str(file_in(tmp_path)), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "unirep_lite.data", "build", "digits"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "set UNIREP_DATA to a writable folder" in run.stderr
