"""Claims of the notes' sequence loss: the Connectionist Temporal Classification loss
(``CTCLoss``)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ... import losses
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import figure

SECTION = "Loss: CTCLoss (connectionist temporal classification)"

ALPHABET = "ABCDE"  # labels 1..5; 0 is the blank
BLANK = 0
NOISE = 0.2  # standard deviation of the Gaussian noise on every feature of every frame
MIN_SEQUENCE_ACCURACY = 0.8
MAX_LABEL_ERROR_RATE = 0.1


# --------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Sequences:
    """Padded frames (N, T, F), their lengths, padded targets (N, S) and their lengths, and
    each frame's true symbol (0 for silence; never shown to the model)."""

    frames: Tensor
    frame_lengths: Tensor
    targets: Tensor
    target_lengths: Tensor
    frame_symbols: Tensor

    def strings(self) -> list[list[int]]:
        return [t[:n].tolist() for t, n in zip(self.targets, self.target_lengths, strict=True)]


def _sequences(n: int, g: torch.Generator) -> _Sequences:
    """``n`` random label sequences (length 2-6 over the alphabet), each label emitting 2-5
    frames whose features are its one-hot code plus noise; 0-2 frames of silence (zeros plus
    noise) between labels, at least one between two equal labels (otherwise "AA" could not
    be told from "A"), and 0-3 at each end."""
    k = len(ALPHABET)
    rows, symbols, targets = [], [], []
    for _ in range(n):
        length = int(torch.randint(2, 7, (), generator=g))
        target = (torch.randint(0, k, (length,), generator=g) + 1).tolist()
        durations = torch.randint(2, 6, (length,), generator=g).tolist()
        gaps = torch.randint(0, 3, (length + 1,), generator=g)
        gaps[0], gaps[-1] = torch.randint(0, 4, (2,), generator=g)
        per_frame: list[int] = [0] * int(gaps[0])
        for i, (label, d) in enumerate(zip(target, durations, strict=True)):
            per_frame += [label] * d
            gap = int(gaps[i + 1])
            if i + 1 < length and target[i + 1] == label:
                gap = max(gap, 1)
            per_frame += [0] * gap
        sym = torch.tensor(per_frame)
        code = torch.zeros(len(sym), k)
        speaking = sym > 0
        code[speaking, sym[speaking] - 1] = 1.0
        rows.append(code + NOISE * torch.randn(code.shape, generator=g))
        symbols.append(sym)
        targets.append(torch.tensor(target))
    frames = nn.utils.rnn.pad_sequence(rows, batch_first=True)
    return _Sequences(
        frames,
        torch.tensor([len(r) for r in rows]),
        nn.utils.rnn.pad_sequence(targets, batch_first=True),  # padding 0 is never read
        torch.tensor([len(t) for t in targets]),
        nn.utils.rnn.pad_sequence(symbols, batch_first=True),
    )


# --------------------------------------------------------------------------- model, decoding


class _FrameModel(nn.Module):
    """Three 1-D convolutions over the frames (receptive field 13 frames) -> log-softmax over
    blank + the alphabet at every frame. Input (N, T, F); output (T, N, C) as CTC wants."""

    def __init__(self, features: int, classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(features, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, classes, 1),
        )

    def forward(self, frames: Tensor) -> Tensor:
        logits = self.net(frames.transpose(1, 2))  # (N, C, T)
        return torch.log_softmax(logits.permute(2, 0, 1), dim=-1)


def _greedy(log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
    """Best path decoding: the most probable class at each frame, repeats merged, blanks
    dropped."""
    best = log_probs.argmax(-1).T  # (N, T)
    out = []
    for path, n in zip(best, lengths, strict=True):
        path = torch.unique_consecutive(path[:n])
        out.append(path[path != BLANK].tolist())
    return out


def _edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _scores(predicted: list[list[int]], truth: list[list[int]]) -> tuple[float, float]:
    """Sequence accuracy (exact matches) and label error rate (total edit distance over the
    total target length)."""
    exact = sum(p == t for p, t in zip(predicted, truth, strict=True))
    edits = sum(_edit_distance(p, t) for p, t in zip(predicted, truth, strict=True))
    return exact / len(truth), edits / sum(len(t) for t in truth)


def _text(labels: list[int]) -> str:
    return "".join(ALPHABET[i - 1] for i in labels) or "(empty)"


# ------------------------------------------------------------------------------- claim


def _decide_ctc(n: dict) -> tuple[str, str]:
    acc, ler = n["sequence_accuracy"], n["label_error_rate"]
    base_ler = n["baseline_label_error_rate"]
    aligned_acc = n["aligned_sequence_accuracy"]
    reason = (
        f"on {n['test_sequences']} held-out sequences, greedy CTC decoding transcribes "
        f"{acc:.3f} exactly (want ≥ {MIN_SEQUENCE_ACCURACY}) with label error rate {ler:.3f} "
        f"(want ≤ {MAX_LABEL_ERROR_RATE}); the same network trained on the true frame "
        f"alignment: {aligned_acc:.3f}, {n['aligned_label_error_rate']:.3f}; constant "
        f"most-frequent-transcript baseline: {n['baseline_sequence_accuracy']:.3f}, "
        f"{base_ler:.3f}; raw frames read without a model: "
        f"{n['raw_frames_sequence_accuracy']:.3f}, {n['raw_frames_label_error_rate']:.3f}"
    )
    if aligned_acc < MIN_SEQUENCE_ACCURACY:
        return verdict(
            False,
            reason + f" (the aligned reference is below {MIN_SEQUENCE_ACCURACY}: the data is "
            "too noisy, or the run too short, to test the claim)",
            inconclusive=True,
        )
    beats_baselines = (
        ler < base_ler
        and acc > n["raw_frames_sequence_accuracy"]
        and ler < n["raw_frames_label_error_rate"]
    )
    return verdict(
        acc >= MIN_SEQUENCE_ACCURACY and ler <= MAX_LABEL_ERROR_RATE and beats_baselines, reason
    )


@claim(
    id="sequence.ctc_transcribes",
    section=SECTION,
    statement="Loss: The Connectionist Temporal Classification loss (CTCLoss): a model "
    "trained with CTC learns to transcribe unsegmented sequences — the targets give only "
    "the labels in order, never which frames belong to which label.",
    method=f"Generate seeded sequences over a {len(ALPHABET)}-symbol alphabet: 2-6 labels, "
    f"each emitting 2-5 frames of its one-hot code plus Gaussian noise (σ = {NOISE}), with "
    "0-2 silent frames (zeros plus noise) between labels (at least 1 between equal labels) "
    "and 0-3 at the ends; no alignment is given. Train a three-layer 1-D convolutional "
    "network (log_softmax over blank + symbols per frame) with mldl.losses.ctc and Adam. "
    "Decode held-out sequences greedily (argmax per frame, merge repeats, drop blanks) and "
    "measure the fraction transcribed exactly and the label error rate (total edit distance "
    "/ total target length), also split by whether the target holds two equal adjacent "
    "labels (which only a blank between them can keep apart). References: the same network "
    "trained with per-frame NLL on the true frame labels (silence as blank), which CTC "
    "never sees, decoded the same way (what the data allows); always answering the most "
    "frequent training transcript (the constant baseline); and reading the raw frames "
    "without a model (argmax of the features where it exceeds 0.5, else silence, then the "
    "same collapse).",
    criterion=f"Supported if the sequence accuracy is at least {MIN_SEQUENCE_ACCURACY}, the "
    f"label error rate at most {MAX_LABEL_ERROR_RATE}, and both beat the two model-free "
    "baselines (the constant most-frequent transcript, and the raw frames' own argmax read "
    "through the same greedy decoding), so that what is measured is learned. Inconclusive "
    "if even the frame-aligned reference transcribes fewer than "
    f"{MIN_SEQUENCE_ACCURACY} of the sequences exactly (the data or the run does "
    "not allow the test).",
    decide=_decide_ctc,
)
def ctc_transcribes(ctx: Context) -> Evidence:
    train = _sequences(ctx.pick(128, 1500, 6000), ctx.generator(21))
    test = _sequences(ctx.pick(64, 500, 2000), ctx.generator(22))
    epochs = ctx.pick(2, 8, 20)
    truth = test.strings()

    model, history, held_out = _train("ctc", train, test, epochs, ctx, stream=23)
    log_probs, decoded = _decode(model, test, ctx)
    accuracy, ler = _scores(decoded, truth)

    repeats = [any(a == b for a, b in itertools.pairwise(t)) for t in truth]
    by_repeat = {}
    for has, name in ((True, "with"), (False, "without")):
        chosen = [i for i, r in enumerate(repeats) if r == has]
        exact = sum(decoded[i] == truth[i] for i in chosen)
        by_repeat[name] = {"sequences": len(chosen), "accuracy": exact / max(len(chosen), 1)}

    aligned, aligned_history, _ = _train("aligned", train, test, epochs, ctx, stream=25)
    aligned_acc, aligned_ler = _scores(_decode(aligned, test, ctx)[1], truth)

    train_strings = [tuple(s) for s in train.strings()]
    most_frequent = list(max(set(train_strings), key=lambda s: (train_strings.count(s), s)))
    base_acc, base_ler = _scores([most_frequent] * len(truth), truth)

    strongest, which = test.frames.max(-1)
    raw_paths = torch.where(strongest > 0.5, which + 1, BLANK)
    raw = [
        [int(s) for s in torch.unique_consecutive(p[:n]) if s != BLANK]
        for p, n in zip(raw_paths, test.frame_lengths, strict=True)
    ]
    raw_acc, raw_ler = _scores(raw, truth)

    figures = _figures(test, log_probs, decoded, history, held_out)
    return Evidence(
        numbers={
            "alphabet_size": len(ALPHABET),
            "noise_sigma": NOISE,
            "train_sequences": len(train.frames),
            "test_sequences": len(test.frames),
            "epochs": epochs,
            "final_train_loss": history[-1],
            "sequence_accuracy": accuracy,
            "label_error_rate": ler,
            "sequence_accuracy_by_adjacent_repeat": by_repeat,
            "aligned_sequence_accuracy": aligned_acc,
            "aligned_label_error_rate": aligned_ler,
            "aligned_final_train_loss": aligned_history[-1],
            "baseline_sequence_accuracy": base_acc,
            "baseline_label_error_rate": base_ler,
            "raw_frames_sequence_accuracy": raw_acc,
            "raw_frames_label_error_rate": raw_ler,
        },
        figures=figures,
        table=[
            {
                "target": _text(truth[i]),
                "CTC decoding": _text(decoded[i]),
                "frames": int(test.frame_lengths[i]),
                "edits": _edit_distance(decoded[i], truth[i]),
            }
            for i in range(min(8, len(truth)))
        ],
    )


def _train(
    kind: str, train: _Sequences, test: _Sequences, epochs: int, ctx: Context, *, stream: int
) -> tuple[nn.Module, list[float], list[tuple[float, float]]]:
    """Adam on shuffled mini-batches with the CTC loss (``kind='ctc'``: the transcripts only)
    or the per-frame NLL of the true frame labels (``'aligned'``); returns the model, the
    mean training loss and the held-out (accuracy, label error rate) after each epoch."""
    dev, batch = ctx.device, 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed * 1_000_003 + stream)  # the initial weights
        model = _FrameModel(len(ALPHABET), len(ALPHABET) + 1).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = ctx.generator(stream + 1)
    truth = test.strings()
    history, held_out = [], []
    for _ in ctx.steps(range(epochs), f"{kind} epochs", total=epochs):
        model.train()
        order = torch.randperm(len(train.frames), generator=g)
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            lengths = train.frame_lengths[idx]
            t_max = int(lengths.max())
            log_probs = model(train.frames[idx, :t_max].to(dev))
            if kind == "ctc":
                loss = losses.ctc(
                    log_probs, train.targets[idx].to(dev), lengths, train.target_lengths[idx]
                )
            else:
                within = torch.arange(t_max).unsqueeze(1) < lengths.unsqueeze(0)  # (T, N)
                frame_labels = train.frame_symbols[idx, :t_max].T  # silence is the blank
                loss = losses.nll(log_probs[within.to(dev)], frame_labels[within].to(dev))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(order))
        held_out.append(_scores(_decode(model, test, ctx)[1], truth))
    return model, history, held_out


def _decode(model: nn.Module, seqs: _Sequences, ctx: Context) -> tuple[Tensor, list[list[int]]]:
    """The model's per-frame log-probabilities (T, N, C) on the CPU, and its greedy
    transcripts."""
    model.eval()
    with torch.no_grad():
        log_probs = model(seqs.frames.to(ctx.device)).cpu()
    return log_probs, _greedy(log_probs, seqs.frame_lengths)


def _figures(test, log_probs, decoded, history, held_out):
    fig, (ax1, ax2) = figure(ncols=2, width=4.4)
    epochs = range(1, len(history) + 1)
    ax1.plot(epochs, history, "o-", ms=3)
    ax1.set(xlabel="epoch", ylabel="mean CTC loss per label", title="Training loss", yscale="log")
    ax2.plot(epochs, [a for a, _ in held_out], "o-", ms=3, label="sequence accuracy")
    ax2.plot(epochs, [e for _, e in held_out], "s-", ms=3, label="label error rate")
    ax2.set(xlabel="epoch", ylabel="held-out score", title="Greedy decoding, held out", ylim=(0, 1))
    ax2.legend()
    curves = Figure(
        fig,
        "Left: the CTC loss on the training sequences, per epoch. Right: exact-transcription "
        "accuracy and label error rate of greedy decoding on the held-out sequences.",
    )

    i = 0  # the first held-out sequence, whatever it is
    n = int(test.frame_lengths[i])
    fig2, (top, bottom) = figure(nrows=2, width=8.8, height=2.3)
    labels = ["silence", *ALPHABET]
    features = top.imshow(
        test.frames[i, :n].T.numpy(), aspect="auto", cmap="viridis", interpolation="nearest"
    )
    top.set(
        yticks=range(len(ALPHABET)),
        yticklabels=list(ALPHABET),
        ylabel="feature",
        title=f"Input frames (one-hot + noise σ={NOISE}); true frame labels on top",
    )
    for t, s in enumerate(test.frame_symbols[i, :n].tolist()):
        top.text(t, -0.9, "·" if s == 0 else ALPHABET[s - 1], ha="center", va="bottom", fontsize=8)
    top.set_ylim(len(ALPHABET) - 0.5, -1.2)
    top.grid(False)
    image = bottom.imshow(
        log_probs[:n, i].exp().T.numpy(),
        aspect="auto",
        cmap="magma",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    bottom.set(
        yticks=range(len(labels)),
        yticklabels=["blank", *ALPHABET],
        xlabel="frame",
        ylabel="class",
        title=f"Per-frame posteriors: target {_text(test.strings()[i])}, greedy decoding "
        f"{_text(decoded[i])}",
    )
    bottom.grid(False)
    fig2.colorbar(features, ax=top, label="feature value")
    fig2.colorbar(image, ax=bottom, label="p(class | frames)")
    posteriors = Figure(
        fig2,
        "The first held-out sequence. Top: its noisy input frames, with each frame's true "
        "label (· for silence), which training never sees. Bottom: the trained model's "
        "per-frame posteriors (blank = no new label), and the transcript that greedy "
        "decoding reads from them.",
    )
    return [curves, posteriors]
