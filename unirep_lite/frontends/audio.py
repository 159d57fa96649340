"""Audio front-end: waveform -> Kaldi-style log-mel filterbank seen as a 1 x T x F image.

As in the paper: 128 mel bins, 25 ms Hanning windows every 10 ms (torchaudio.compliance.kaldi.fbank
with htk_compat), padded to T = 128 frames for a 1 s clip (which has 98 frames), and SpecAugment
(frequency and time masks of up to 48) for training only.

Two layouts of the same numbers (`layout=`): "paper", B x 1 x T x F (time down the rows, as the
paper's text says), and "authors", B x 1 x F x T (what the authors' AST-based code feeds). Two
normalisations (`normalize=`): "clip" (ours: each clip's real frames to mean 0, std 1 before the
zero padding) and "dataset" (the authors': after padding and masking, (fbank - mean) / (2 std) with
one mean and std of the whole training set, `dataset_stats`); "none" leaves the log-mels as they are.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import checks

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
TARGET_FRAMES = 128
FRAME_LENGTH_MS, FRAME_SHIFT_MS = 25.0, 10.0
LOW_FREQ = 20.0  # Kaldi's default lowest mel-filter edge
LAYOUTS = ("paper", "authors")
NORMALIZATIONS = ("clip", "dataset", "none")
MIN_SAMPLE_RATE = 100  # a 10 ms frame shift of at least one sample
MIN_MEL_BINS = 4  # Kaldi's mel banks need more than 3 bins
MIN_STD = 1e-6  # of the dataset statistics


def check_audio(sample_rate, num_mel_bins) -> None:
    checks.integer("sample_rate", sample_rate, minimum=MIN_SAMPLE_RATE)
    checks.integer("num_mel_bins", num_mel_bins, minimum=MIN_MEL_BINS)


def hz_to_mel(f):
    """HTK's mel scale, the one kaldi.fbank uses."""
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (math.exp(m / 1127.0) - 1.0)


def mel_bin_centers(num_bins: int = NUM_MEL_BINS, sample_rate: int = SAMPLE_RATE,
                    low_freq: float = LOW_FREQ, high_freq: float | None = None) -> torch.Tensor:
    """Centre frequency (Hz) of each triangular mel filter: equally spaced in mel between the edges."""
    checks.positive_int("num_bins", num_bins)
    checks.number("sample_rate", sample_rate, above=0.0)
    high_freq = sample_rate / 2 if high_freq is None else high_freq
    lo, hi = hz_to_mel(low_freq), hz_to_mel(high_freq)
    step = (hi - lo) / (num_bins + 1)
    return torch.tensor([mel_to_hz(lo + (m + 1) * step) for m in range(num_bins)])


def log_mel_fbank(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE,
                  num_mel_bins: int = NUM_MEL_BINS) -> torch.Tensor:
    """One mono waveform (1 x N) -> log-mel filterbank, frames x bins (no padding, no normalising)."""
    import torchaudio.compliance.kaldi as kaldi

    check_audio(sample_rate, num_mel_bins)
    min_samples = int(sample_rate * FRAME_LENGTH_MS / 1000)
    if wave.ndim != 2 or wave.shape[0] != 1 or wave.shape[1] < min_samples:
        raise ValueError(f"expected a mono waveform 1 x N with N >= {min_samples} samples "
                         f"(one 25 ms window), got shape {tuple(wave.shape)}")
    return kaldi.fbank(wave.float(), sample_frequency=sample_rate, num_mel_bins=num_mel_bins,
                       frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS,
                       window_type="hanning", htk_compat=True, use_energy=False, dither=0.0)


def log_mel_fbank_batch(waves: torch.Tensor, sample_rate: int = SAMPLE_RATE,
                        num_mel_bins: int = NUM_MEL_BINS) -> torch.Tensor:
    """B x N mono waveforms -> B x frames x bins: `log_mel_fbank` of each, for the whole batch at once.

    kaldi.fbank takes one clip at a time (dozens of small kernels per clip: the GPU would idle); these
    are its steps for every frame of every clip together, with the same numbers: 25 ms frames every
    10 ms, DC offset removed, pre-emphasis 0.97, a Hanning window, |FFT|^2 at the next power of two,
    Kaldi's mel banks (htk_compat, no energy, dither 0), log. Always float32, also under autocast.
    """
    import torchaudio.compliance.kaldi as kaldi

    check_audio(sample_rate, num_mel_bins)
    size = int(sample_rate * FRAME_LENGTH_MS / 1000)
    shift = int(sample_rate * FRAME_SHIFT_MS / 1000)
    if waves.ndim != 2 or waves.shape[1] < size:
        raise ValueError(f"expected mono waveforms B x N with N >= {size} samples (one 25 ms window), "
                         f"got shape {tuple(waves.shape)}")
    with torch.autocast(waves.device.type, enabled=False):
        frames = waves.float().unfold(-1, size, shift)               # B x T x size (Kaldi's snip_edges)
        frames = frames - frames.mean(-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], -1)  # the first sample repeats
        frames = (frames - 0.97 * previous) * torch.hann_window(size, periodic=False, device=waves.device)
        padded = 1 << (size - 1).bit_length()
        power = torch.fft.rfft(nn.functional.pad(frames, (0, padded - size))).abs().pow(2)
        banks, _ = kaldi.get_mel_banks(num_mel_bins, padded, float(sample_rate), LOW_FREQ, 0.0, 100.0, -500.0, 1.0)
        mel = power @ nn.functional.pad(banks, (0, 1)).to(power).T     # no weight on the Nyquist bin
        return mel.clamp_min(torch.finfo(mel.dtype).eps).log()


class AudioFrontend(nn.Module):
    """Waveform -> 1 x T x F log-mel image (T = target_frames, F = num_mel_bins), or 1 x F x T.

    Input: N, 1 x N (one clip) or B x 1 x N (a batch) -> 1 x T x F or B x 1 x T x F ("paper" layout;
    "authors": 1 x F x T, B x 1 x F x T).
    normalize: "clip" (or True): each clip's filterbank gets zero mean and unit variance over its real
      frames, so the zero padding up to T frames sits at the clip's average level; "dataset": the
      authors' (fbank - mean) / (2 std) after padding, with `stats=(mean, std)` of the training set
      (`dataset_stats`); "none" (or False): no normalising.
    augment: SpecAugment (one frequency mask and one time mask, each up to 48 wide), applied only
      when augment=True and the module is in training mode; build the training front-end with
      augment=True and the evaluation one without.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = NUM_MEL_BINS,
                 target_frames: int = TARGET_FRAMES, normalize="clip", augment: bool = False,
                 freq_mask: int = 48, time_mask: int = 48, layout: str = "paper",
                 stats: tuple[float, float] | None = None):
        super().__init__()
        import torchaudio.transforms as T

        check_audio(sample_rate, num_mel_bins)
        checks.positive_int("target_frames", target_frames)
        checks.integer("freq_mask", freq_mask, minimum=0)
        checks.integer("time_mask", time_mask, minimum=0)
        checks.boolean("augment", augment)
        normalize = {True: "clip", False: "none"}.get(normalize, normalize) if isinstance(normalize, (bool, str)) \
            else normalize
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS} (or True / False), got {normalize!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if (normalize == "dataset" or stats is not None) and not (isinstance(stats, (tuple, list)) and len(stats) == 2):
            raise ValueError(f"normalize='dataset' needs stats=(mean, std > 0) of the training set "
                             f"(see dataset_stats), got {stats!r}")
        if stats is not None:
            # a std below MIN_STD would blow the normalised filterbank up past float32
            checks.number("stats[0] (mean)", stats[0]), checks.number("stats[1] (std)", stats[1], minimum=MIN_STD)
        self.sample_rate, self.num_mel_bins, self.target_frames = sample_rate, num_mel_bins, target_frames
        self.normalize, self.augment, self.layout = normalize, augment, layout
        self.stats = None if stats is None else (float(stats[0]), float(stats[1]))
        # iid_masks: an independent mask for every clip of a batch, drawn on the batch's device
        self.freq_masking = T.FrequencyMasking(freq_mask, iid_masks=True)
        self.time_masking = T.TimeMasking(time_mask, iid_masks=True)

    def batch(self, waves: torch.Tensor) -> torch.Tensor:
        """B x N waveforms -> B x 1 x T x F (or B x 1 x F x T): the whole batch at once, in float32."""
        with torch.autocast(waves.device.type, enabled=False):  # a filterbank wants float32 (log, FFT)
            fb = log_mel_fbank_batch(waves, self.sample_rate, self.num_mel_bins)  # B x frames x F
            if self.normalize == "clip":
                fb = (fb - fb.mean((1, 2), keepdim=True)) / (fb.std((1, 2), keepdim=True) + 1e-5)
            fb = fb[:, : self.target_frames]
            fb = nn.functional.pad(fb, (0, 0, 0, self.target_frames - fb.shape[1]))
            if self.augment and self.training:
                # torchaudio masks (..., channel, freq, time): transpose in and out of that layout
                spec = self.time_masking(self.freq_masking(fb.transpose(1, 2).unsqueeze(1)))
                fb = spec[:, 0].transpose(1, 2)
            if self.normalize == "dataset":  # the authors' order: pad, mask, then normalise
                mean, std = self.stats
                fb = (fb - mean) / (2 * std)
            return (fb if self.layout == "paper" else fb.transpose(1, 2)).unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim == 1:
            return self.batch(wave.unsqueeze(0))[0]
        if wave.ndim == 2 and wave.shape[0] == 1:
            return self.batch(wave)[0]
        if wave.ndim == 3 and wave.shape[1] == 1:
            return self.batch(wave[:, 0])
        raise ValueError(f"expected a waveform N, 1 x N or B x 1 x N (mono), got shape {tuple(wave.shape)}")

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}, normalize={self.normalize!r}, stats={self.stats}, augment={self.augment}"


def dataset_stats(waves, **frontend_kwargs) -> tuple[float, float]:
    """(mean, std) of the padded, unnormalised filterbanks of `waves` (an iterable of clips): the
    statistics the authors' normalisation uses, computed on the training set."""
    fe = AudioFrontend(normalize="none", **frontend_kwargs).eval()
    total, total_sq, n = 0.0, 0.0, 0
    with torch.no_grad():
        for w in waves:
            fb = fe(w).double()
            total, total_sq, n = total + fb.sum().item(), total_sq + fb.pow(2).sum().item(), n + fb.numel()
    if n == 0:
        raise ValueError("dataset_stats needs at least one clip")
    mean = total / n
    return mean, math.sqrt(max(total_sq / n - mean * mean, 0.0))
