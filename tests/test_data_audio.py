"""Audio: espeak-ng spoken commands (determinism, voice-disjoint splits), Speech Commands V2 loader,
and the Kaldi log-mel front-end (shapes, a tone's known answer, SpecAugment only for training)."""
import math

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from unirep_lite.data import audio, cache
from unirep_lite.frontends.audio import AudioFrontend, log_mel_fbank, mel_bin_centers


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    audio.build(fast=True, root=root)
    return root


def test_espeak_repeats_from_a_fresh_start():
    first = audio.Espeak()
    a = [first.say(w, "en-us+m3", rate=150, pitch=40) for w in ("yes", "no", "yes")]
    assert a[0].dtype == np.int16 and len(a[0]) > 0.2 * first.sample_rate
    second = audio.Espeak()  # after `first` has already spoken: its own, fresh library state
    b = [second.say(w, "en-us+m3", rate=150, pitch=40) for w in ("yes", "no", "yes")]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="no voice"):
        second.say("yes", "xx-nowhere")


def test_speech_splits_shapes(speech_root):
    for split in audio.SPLITS:
        ds = audio.load(split, fast=True, root=speech_root)
        x, y = ds[0]
        assert ds.classes == audio.WORDS
        assert x.shape == (1, audio.CLIP_SAMPLES) and x.dtype == torch.float32
        assert 0.05 < x.abs().max() <= 1
        assert sorted(set(ds.labels.tolist())) == list(range(len(audio.WORDS)))  # every word in every split
        assert len(ds) == len(ds.voices)


def test_speech_voices_do_not_leak(speech_root):
    timbres = {}
    for split in audio.SPLITS:
        ds = audio.load(split, fast=True, root=speech_root)
        timbres[split] = {v.split("+", 1)[1] for v in ds.voices}
    assert not timbres["train"] & timbres["val"]
    assert not timbres["train"] & timbres["test"]
    assert not timbres["val"] & timbres["test"]
    assert len(timbres["train"]) > 4 * len(timbres["test"]) > 0


def test_speech_deterministic(speech_root, tmp_path):
    audio.Espeak().say("stop", "en+f2")  # other synthesis first must not change the dataset
    again = audio.build(fast=True, root=tmp_path, force=True)
    assert cache.dataset_checksum(again) == cache.dataset_checksum(speech_root / "speech-fast")


def test_noise_helpers():
    rng = np.random.default_rng(0)
    for kind in ("white", "pink", "brown", "hum"):
        noise = audio.make_noise(kind, 16000, rng)
        assert noise.shape == (16000,) and abs(np.sqrt(np.mean(noise ** 2)) - 1) < 1e-3
    signal = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    mixed = audio.mix_at_snr(signal, audio.make_noise("white", 16000, rng), 10.0)
    snr = 10 * np.log10(np.mean(signal ** 2) / np.mean((mixed - signal) ** 2))
    assert abs(snr - 10) < 1e-3
    with pytest.raises(ValueError, match="noise kind"):
        audio.make_noise("purple", 10, rng)


# ---------------------------------------------------------------- Speech Commands V2 layout

def _tone(freq, seconds, sr):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


@pytest.fixture
def speech_commands(tmp_path):
    """A tiny Speech Commands V2 tree: 2 words x 3 clips, one at 8 kHz, one short, one long."""
    root = tmp_path / "speech_commands_v0.02"
    for word, freq in (("yes", 500.0), ("no", 1500.0)):
        (root / word).mkdir(parents=True)
        wavfile.write(root / word / "aa_nohash_0.wav", 16000, _tone(freq, 1.0, 16000))
        wavfile.write(root / word / "bb_nohash_0.wav", 8000, _tone(freq, 1.0, 8000))  # resampled
        wavfile.write(root / word / "cc_nohash_0.wav", 16000, _tone(freq, 0.6, 16000))  # padded
    wavfile.write(root / "no" / "dd_nohash_0.wav", 16000, _tone(1500.0, 1.3, 16000))  # cropped
    (root / "validation_list.txt").write_text("yes/bb_nohash_0.wav\nno/bb_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/cc_nohash_0.wav\n")
    (root / "_background_noise_").mkdir()
    wavfile.write(root / "_background_noise_" / "white.wav", 16000,
                  (np.random.default_rng(0).standard_normal(32000) * 3000).astype(np.int16))
    return root


def _peak_hz(wave, sr=16000):
    spectrum = np.abs(np.fft.rfft(wave[0].numpy()))
    return np.fft.rfftfreq(wave.shape[-1], 1 / sr)[spectrum.argmax()]


def test_speech_commands_splits_and_lengths(speech_commands):
    train = audio.SpeechCommands(speech_commands, "train")
    val = audio.SpeechCommands(speech_commands, "val")
    test = audio.SpeechCommands(speech_commands, "test")
    assert train.classes == ["no", "yes"]  # word folders, _background_noise_ left out
    assert sorted(r for r, _ in train.files) == ["no/aa_nohash_0.wav", "no/cc_nohash_0.wav",
                                                  "no/dd_nohash_0.wav", "yes/aa_nohash_0.wav"]
    assert [r for r, _ in val.files] == ["no/bb_nohash_0.wav", "yes/bb_nohash_0.wav"]
    assert [r for r, _ in test.files] == ["yes/cc_nohash_0.wav"]
    for ds in (train, val, test):
        for x, y in ds:
            assert x.shape == (1, 16000)
            assert abs(_peak_hz(x) - (500 if ds.classes[y] == "yes" else 1500)) <= 2  # resampled right
    short, _ = test[0]
    assert short[0, 9700:].abs().max() == 0 and short[0, :9500].abs().max() > 0.4  # zero-padded
    assert len(train.background_noise()) == 1


def test_speech_commands_words_subset(speech_commands):
    ds = audio.SpeechCommands(speech_commands, "train", words=["yes"])
    assert ds.classes == ["yes"] and len(ds) == 1


def test_speech_commands_bad_input(speech_commands, tmp_path):
    with pytest.raises(FileNotFoundError, match="validation_list.txt"):
        audio.SpeechCommands(tmp_path / "missing")
    (speech_commands / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt is missing"):
        audio.SpeechCommands(speech_commands)


def test_speech_commands_corrupt_wav(speech_commands):
    bad = speech_commands / "yes" / "zz_nohash_0.wav"
    bad.write_bytes(b"RIFF\x00\x00junk")
    ds = audio.SpeechCommands(speech_commands, "train")  # default: raise when read
    index = [r for r, _ in ds.files].index("yes/zz_nohash_0.wav")
    with pytest.raises(ValueError, match="zz_nohash_0.wav: not a readable WAV"):
        ds[index]
    with pytest.warns(UserWarning, match="zz_nohash_0.wav"):
        skipping = audio.SpeechCommands(speech_commands, "train", on_error="skip")
    assert len(skipping) == len(ds) - 1 and "zz_nohash_0" in skipping.skipped[0]


def test_mix_noise_transform(speech_commands):
    ds = audio.SpeechCommands(speech_commands, "train")
    mix = audio.MixNoise(ds.background_noise(), prob=1.0, snr_db=(10, 10))
    clean = ds[0][0]
    noisy = mix(clean)
    assert noisy.shape == clean.shape
    snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert abs(snr.item() - 10) < 0.01


# ---------------------------------------------------------------- front-end

def test_frontend_shapes():
    fe = AudioFrontend().eval()
    assert fe(torch.randn(16000)).shape == (1, 128, 128)
    assert fe(torch.randn(1, 16000)).shape == (1, 128, 128)
    assert fe(torch.randn(3, 1, 16000)).shape == (3, 1, 128, 128)
    assert log_mel_fbank(torch.randn(1, 16000)).shape == (98, 128)  # 1 s: 98 frames before padding


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_frontend_tone_peaks_at_its_mel_bin(freq):
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * freq * t).unsqueeze(0)
    fbank = AudioFrontend().eval()(tone)[0, :98]  # real frames only
    peak = fbank.mean(0).argmax().item()
    nearest = (mel_bin_centers() - freq).abs().argmin().item()
    assert abs(peak - nearest) <= (1 if freq < 500 else 0)  # low bins are narrower than the FFT's 31 Hz


def test_specaugment_only_when_training():
    torch.manual_seed(0)
    wave = torch.randn(1, 16000)
    plain = AudioFrontend()(wave)
    augmenting = AudioFrontend(augment=True)
    assert torch.equal(augmenting.eval()(wave), plain)  # evaluation: no masks
    masked = augmenting.train()(wave)
    assert not torch.equal(masked, plain)
    changed = (masked != plain)[0]
    # masks are whole frequency columns or whole time rows, set to zero
    assert (masked[0][changed] == 0).all()
    assert changed.all(0).any() or changed.all(1).any()


def test_frontend_rejects_wrong_shapes():
    fe = AudioFrontend()
    for shape in [(2, 16000), (2, 2, 16000), (1, 1, 1, 16000), (1, 100)]:
        with pytest.raises(ValueError, match="expected"):
            fe(torch.randn(*shape))


def test_frontend_feeds_the_backbone():
    import unirep_lite

    model = unirep_lite.create_model("unireplknet_a", num_classes=10, in_chans=1).eval()
    x = AudioFrontend()(torch.randn(2, 1, 16000))
    with torch.no_grad():
        assert model(x).shape == (2, 10)
