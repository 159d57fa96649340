"""Audio: spoken commands synthesised offline with espeak-ng, and a Speech Commands V2 loader.

The offline dataset ("speech") says ten of Speech Commands' words with many voices: eight English
accents x espeak-ng's voice variants (timbres), each clip with its own speaking rate and pitch, cut to
1 s at 16 kHz and, for half of the clips, mixed with generated background noise. The split is by
voice variant: a voice heard in training is never heard in validation or test (in any accent), so
the test measures generalisation to new speakers, as Speech Commands' speaker-disjoint split does.

espeak-ng keeps hidden state between clips, so output repeats only if its random seed and the C
library's rand() (breathy voices use it) are set before every clip, clips are made in a fixed order,
and the library starts fresh: `Espeak` loads a private copy of the shared library for that reason.
"""
from __future__ import annotations

import atexit
import ctypes
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unirep_lite.data import cache
from unirep_lite.data.common import FixedSamples, SPLITS, check_folder, check_split, drop_unreadable, load_npy
from unirep_lite.env import progress_bar

NAME = "speech"
VERSION = 1
SEED = 0
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s, as Speech Commands
WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# espeak-ng's English accents (language codes of its gmw/en* voices; Shavian script left out)
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc"]
VOICE_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


# ---------------------------------------------------------------- espeak-ng through ctypes

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_AUDIO_OUTPUT_SYNCHRONOUS, _CHARS_UTF8, _POS_CHARACTER = 2, 1, 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER values


def espeak_variants() -> list[str]:
    """Names of espeak-ng's voice variants (timbres) shipped by espeakng-loader, sorted."""
    import espeakng_loader

    return sorted(p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir())


def _libc_srand(seed: int) -> None:
    """Seed the C library's rand(), which espeak-ng's noise sources use besides its own generator."""
    try:
        libc = ctypes.CDLL(None) if sys.platform != "win32" else ctypes.cdll.msvcrt
        libc.srand(ctypes.c_uint(seed))
    except (OSError, AttributeError):  # no libc to seed: clips may then differ from run to run
        pass


class Espeak:
    """A private, freshly initialised espeak-ng that returns int16 waveforms at `sample_rate`."""

    def __init__(self):
        import espeakng_loader

        # A copy of the .so gets its own static state: earlier synthesis elsewhere can't change ours.
        # The copy must outlive the process: the loader recognises a file by its inode, and a deleted
        # copy's inode can be reused by the next copy, which would hand back the old, used library.
        tmp = Path(tempfile.mkdtemp(prefix="unirep-espeak-"))
        atexit.register(shutil.rmtree, tmp, True)
        lib_path = tmp / Path(espeakng_loader.get_library_path()).name
        shutil.copy(espeakng_loader.get_library_path(), lib_path)
        self._lib = lib = ctypes.CDLL(str(lib_path))
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                 espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (espeakng-loader's data missing?)")
        self._chunks: list[np.ndarray] = []

        def collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference: C holds only a raw pointer
        lib.espeak_SetSynthCallback(self._callback)

    def say(self, text: str, voice: str, rate: int = 175, pitch: int = 50, seed: int = 0) -> np.ndarray:
        """`voice` is "<accent>" or "<accent>+<variant>"; rate in words/min, pitch 0..100."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self._lib.espeak_ng_SetRandSeed(seed)
        _libc_srand(seed)  # breathy/whispery voices (klatt "breath") draw their noise from libc's rand()
        self._chunks.clear()
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


# ---------------------------------------------------------------- waveform helpers

def fix_length(wave: torch.Tensor, n: int = CLIP_SAMPLES) -> torch.Tensor:
    """Zero-pad at the end or crop the end so that the last axis has `n` samples."""
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return torch.nn.functional.pad(wave, (0, n - wave.shape[-1]))


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Band-limited resampling along the last axis (polyphase FIR: fast for any rate pair)."""
    from scipy.signal import resample_poly

    if orig_sr == new_sr:
        return wave
    g = math.gcd(orig_sr, new_sr)
    out = resample_poly(wave.numpy(), new_sr // g, orig_sr // g, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def make_noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE):
    """Unit-RMS background noise: "white", "pink" (1/f power), "brown" (1/f^2) or "hum" (mains + hiss)."""
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / sample_rate)
        f[0] = f[1]
        spec /= np.sqrt(f) if kind == "pink" else f  # amplitude ~ f^-1/2 or f^-1
        x = np.fft.irfft(spec, n)
    elif kind == "hum":
        t = np.arange(n) / sample_rate
        mains = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3))
        x = x + 0.1 * white
    else:
        raise ValueError(f"noise kind must be white, pink, brown or hum, got {kind!r}")
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that power(signal) / power(noise) = 10^(snr_db / 10)."""
    p_signal = np.mean(signal ** 2) + 1e-12
    p_noise = np.mean(noise ** 2) + 1e-12
    return signal + noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))


def _place_word(wave: np.ndarray, rng: np.random.Generator, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Trim espeak's silences, then put the word at a random offset in an n-sample clip."""
    loud = np.flatnonzero(np.abs(wave) > 0.02 * (np.abs(wave).max() + 1e-12))
    word = wave[loud[0]:loud[-1] + 1] if loud.size else wave
    if len(word) > n:  # very slow speech: keep the middle second
        start = (len(word) - n) // 2
        word = word[start:start + n]
    out = np.zeros(n, np.float32)
    offset = int(rng.integers(0, n - len(word) + 1))
    out[offset:offset + len(word)] = word
    return out


# ---------------------------------------------------------------- the offline dataset

def _params(fast: bool) -> dict:
    from importlib.metadata import version

    return {
        "seed": SEED, "words": WORDS,
        "accents": ACCENTS[:4] if fast else ACCENTS,
        "n_variants": 40 if fast else len(espeak_variants()),
        "rate_wpm": [120, 260], "pitch": [15, 85], "peak": [0.3, 0.95],
        "noise_prob": 0.5, "noise_kinds": ["white", "pink", "brown", "hum"], "snr_db": [5, 30],
        "floor_snr_db": [40, 60],
        # other voice data would give another dataset: the version is part of the build's identity
        "espeakng_loader": version("espeakng-loader"),
    }


def voice_split(params: dict) -> dict[str, list[str]]:
    """Voice variants per split (disjoint), from the seed: the basis of the no-leak guarantee."""
    rng = np.random.default_rng(params["seed"])
    variants = list(rng.permutation(espeak_variants()))[:params["n_variants"]]
    n_val = max(1, round(VOICE_FRACTIONS["val"] * len(variants)))
    n_test = max(1, round(VOICE_FRACTIONS["test"] * len(variants)))
    return {"test": sorted(variants[:n_test]), "val": sorted(variants[n_test:n_test + n_val]),
            "train": sorted(variants[n_test + n_val:])}


def synth_clip(tts: Espeak, word: str, voice: str, rng: np.random.Generator, params: dict) -> np.ndarray:
    """One 1 s, 16 kHz int16 clip: a random rate and pitch, a random place in the second, a random
    loudness, and background noise (or, otherwise, a faint noise floor) at a random SNR."""
    rate, pitch = rng.integers(*params["rate_wpm"]), rng.integers(*params["pitch"])
    raw = tts.say(word, voice, rate=rate, pitch=pitch, seed=params["seed"])
    wave = resample(torch.from_numpy(raw.astype(np.float32) / 32768.0), tts.sample_rate).numpy()
    clip = _place_word(wave, rng)
    clip *= rng.uniform(*params["peak"]) / (np.abs(clip).max() + 1e-12)
    if rng.random() < params["noise_prob"]:
        noise = make_noise(str(rng.choice(params["noise_kinds"])), CLIP_SAMPLES, rng)
        clip = mix_at_snr(clip, noise, rng.uniform(*params["snr_db"]))
    else:  # every microphone has a noise floor; exact digital silence would be a give-away
        floor = make_noise("white", CLIP_SAMPLES, rng)
        clip = mix_at_snr(clip, floor, rng.uniform(*params["floor_snr_db"]))
    return np.round(np.clip(clip, -1, 1) * 32767).astype(np.int16)


def _builder(params: dict):
    def build_into(folder: Path) -> None:
        tts = Espeak()
        splits = voice_split(params)
        for si, split in enumerate(SPLITS):
            # one clip per (voice, accent, word), always made in this order (see the module docstring)
            jobs = [(f"{accent}+{variant}", w) for variant in splits[split]
                    for accent in params["accents"] for w in range(len(params["words"]))]
            audio = np.zeros((len(jobs), CLIP_SAMPLES), np.int16)
            for i, (voice, w) in enumerate(progress_bar(jobs, desc=f"speech: {split}")):
                rng = np.random.default_rng([params["seed"], si, i])
                audio[i] = synth_clip(tts, params["words"][w], voice, rng, params)
            np.save(folder / f"{split}_audio.npy", audio)
            np.save(folder / f"{split}_labels.npy", np.array([w for _, w in jobs], dtype=np.int64))
            np.save(folder / f"{split}_voices.npy", np.array([v for v, _ in jobs]))
        info = {"words": params["words"], "sample_rate": SAMPLE_RATE, "voices": splits}
        (folder / "info.json").write_text(json.dumps(info, indent=1))

    return build_into


def build(fast: bool = False, root=None, force: bool = False) -> Path:
    """Build (once) the synthetic spoken-commands dataset and return its folder."""
    return cache.build_modality(NAME, _params, _builder, version=VERSION, fast=fast, root=root, force=force)


class SpokenWords(FixedSamples, Dataset):
    """The built speech split: (waveform 1 x 16000 float32 in [-1, 1], label); `.voices` per clip."""

    def __init__(self, folder: Path, split: str, transform=None):
        check_split(split)
        folder = Path(folder)
        self.audio = load_npy(folder / f"{split}_audio.npy", mmap_mode="r")
        self.labels = load_npy(folder / f"{split}_labels.npy")
        self.voices = [str(v) for v in load_npy(folder / f"{split}_voices.npy")]
        self.classes = json.loads((folder / "info.json").read_text())["words"]
        self.sample_rate, self.transform = SAMPLE_RATE, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        wave = torch.from_numpy(self.audio[i].astype(np.float32) / 32768.0).unsqueeze(0)
        if self.transform is not None:
            wave = self.transform(wave)
        return wave, int(self.labels[i])


def load(split: str, fast: bool = False, root=None, transform=None) -> SpokenWords:
    """A split of the offline speech dataset (built on first use); `transform` e.g. the audio front-end."""
    check_split(split)  # before a build
    return SpokenWords(build(fast, root), split, transform)


# ---------------------------------------------------------------- Speech Commands V2

SPEECH_COMMANDS_LAYOUT = """expected the Speech Commands V2 layout:
  {root}/
    yes/0a7c2a8d_nohash_0.wav      (one folder per word, 16 kHz mono WAV)
    no/...
    validation_list.txt            (lines like "yes/0a7c2a8d_nohash_0.wav")
    testing_list.txt
    _background_noise_/*.wav       (optional, long noise recordings)"""
NOISE_FOLDER = "_background_noise_"


def read_wav(path, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A WAV file as a mono float32 tensor 1 x N in [-1, 1], resampled to `sample_rate`."""
    from scipy.io import wavfile

    path = Path(path)
    try:
        sr, data = wavfile.read(path)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a readable WAV file ({type(e).__name__}: {e})") from e
    if data.size == 0:
        raise ValueError(f"{path}: WAV file has no samples")
    if data.dtype.kind == "i":  # int16 / int32 PCM
        wave = data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max + 1)
    elif data.dtype == np.uint8:  # 8-bit PCM is unsigned
        wave = (data.astype(np.float32) - 128) / 128
    else:
        wave = data.astype(np.float32)
    if wave.ndim == 2:  # frames x channels -> mono
        wave = wave.mean(axis=1)
    return resample(torch.from_numpy(np.ascontiguousarray(wave)).unsqueeze(0), int(sr), sample_rate)


class SpeechCommands(Dataset):
    """Speech Commands V2 from its own folder layout: (waveform 1 x 16000, label).

    split: "train" (every clip in neither list), "val" (validation_list.txt), "test" (testing_list.txt).
    words: the classes to keep, in label order (default: every word folder, sorted); clips of other
      words are left out.
    Clips are resampled to 16 kHz if needed and zero-padded/cropped to 1 s.
    on_error: "raise" (default) - a corrupt file raises ValueError naming it when it is read;
      "skip" - the constructor reads every file once (slow for the full set) and leaves out the
      unreadable ones, listing them in a warning and in `.skipped`.
    """

    def __init__(self, root, split: str = "train", words=None, transform=None, on_error: str = "raise"):
        root = Path(root)
        check_split(split)
        layout = SPEECH_COMMANDS_LAYOUT.format(root=root)
        check_folder(root, layout, on_error)
        lists = {}
        for s, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
            if not (root / name).is_file():
                raise FileNotFoundError(f"{root / name} is missing; {layout}")
            lists[s] = {ln.strip() for ln in (root / name).read_text().splitlines() if ln.strip()}
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != NOISE_FOLDER)
        if not folders:
            raise FileNotFoundError(f"{root} has no word folders; {layout}")
        self.classes = list(words) if words is not None else folders
        missing = [w for w in self.classes if w not in folders]
        if missing:
            raise FileNotFoundError(f"{root} has no folder for {missing}; {layout}")
        self.root, self.transform, self.sample_rate = root, transform, SAMPLE_RATE
        self.files: list[tuple[str, int]] = []
        for label, word in enumerate(self.classes):
            for wav in sorted((root / word).glob("*.wav")):
                rel = f"{word}/{wav.name}"
                in_split = "val" if rel in lists["val"] else "test" if rel in lists["test"] else "train"
                if in_split == split:
                    self.files.append((rel, label))
        self.skipped: list[str] = []
        if on_error == "skip":
            self.files, self.skipped = drop_unreadable(
                self.files, lambda item: read_wav(self.root / item[0]), "checking WAV files")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        rel, label = self.files[i]
        wave = fix_length(read_wav(self.root / rel, SAMPLE_RATE))
        if self.transform is not None:
            wave = self.transform(wave)
        return wave, label

    def background_noise(self) -> list[torch.Tensor]:
        """The recordings in `_background_noise_/` (1 x N each, 16 kHz), e.g. for `MixNoise`."""
        return [read_wav(p) for p in sorted((self.root / NOISE_FOLDER).glob("*.wav"))]


class MixNoise:
    """Training transform: with probability `prob`, add a random 1 s slice of a noise recording at a
    random SNR in `snr_db`. Works on 1 x N waveforms from either dataset above."""

    def __init__(self, noises: list[torch.Tensor], prob: float = 0.5, snr_db=(5.0, 20.0), seed: int = 0):
        if not noises:
            raise ValueError("MixNoise needs at least one noise waveform")
        self.noises, self.prob, self.snr_db = noises, prob, snr_db
        self.rng = np.random.default_rng(seed)

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        if self.rng.random() >= self.prob:
            return wave
        noise = self.noises[self.rng.integers(len(self.noises))][0]
        n = wave.shape[-1]
        start = int(self.rng.integers(0, max(1, noise.shape[-1] - n + 1)))
        piece = fix_length(noise[start:start + n], n).numpy()
        mixed = mix_at_snr(wave[0].numpy(), piece, self.rng.uniform(*self.snr_db))
        return torch.from_numpy(mixed.astype(np.float32)).unsqueeze(0)
