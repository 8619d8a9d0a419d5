"""Claims of the notes' metric-learning losses: TripletMarginLoss and "FaceNet: Euclidean
distance -> probability" (the Loss section's "Probability Loss Function")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import losses
from ...calibration import calibration_error
from ..core import Context, Evidence, Figure, claim, verdict
from ..plots import PALETTE, figure

SECTION = "Loss: metric learning (TripletMarginLoss, FaceNet distance -> probability)"

K_NEIGHBOURS = 5
TOLERANCE = 0.02  # k-NN accuracy an embedding may lose against raw pixels
MAX_DISTANCE_RATIO = 0.5  # within-class / between-class mean distance
MIN_AUC = 0.95
MAX_ECE = 0.05


# ------------------------------------------------------------------------------ helpers


class _Sampler:
    """Draws, for given anchors, a partner of the same class or of another class, uniformly
    among the candidates (seeded by the generator it is given)."""

    def __init__(self, y: Tensor) -> None:
        self.order = torch.argsort(y, stable=True)
        self.counts = torch.bincount(y)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.num_classes = len(self.counts)

    def member(self, classes: Tensor, g: torch.Generator) -> Tensor:
        u = torch.rand(len(classes), generator=g)
        pos = self.starts[classes] + (u * self.counts[classes]).long()
        return self.order[pos]

    def same(self, y: Tensor, g: torch.Generator) -> Tensor:
        return self.member(y, g)

    def other(self, y: Tensor, g: torch.Generator) -> Tensor:
        shift = torch.randint(1, self.num_classes, (len(y),), generator=g)
        return self.member((y + shift) % self.num_classes, g)


class _Embedding(nn.Module):
    """64 pixels -> a ReLU MLP -> a point on the unit sphere (FaceNet's L2-normalised
    embedding)."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.out(self.net(x)), dim=-1)


def _knn_accuracy(train: Tensor, y_train: Tensor, test: Tensor, y_test: Tensor) -> float:
    """k-NN (Euclidean, majority vote, ties to the smaller label) accuracy on the test set."""
    nearest = torch.cdist(test, train).topk(K_NEIGHBOURS, largest=False).indices
    votes = y_train[nearest].mode(dim=1).values
    return float((votes == y_test).float().mean())


def _distance_ratio(z: Tensor, y: Tensor) -> float:
    """Mean distance between points of the same class over mean distance between points of
    different classes (1: no clustering; 0: every class collapsed to a point)."""
    d = torch.cdist(z.double(), z.double())
    same = y.unsqueeze(0) == y.unsqueeze(1)
    off_diagonal = ~torch.eye(len(y), dtype=torch.bool)
    return float(d[same & off_diagonal].mean() / d[~same].mean())


def _auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count half)."""
    pos, neg = scores[labels == 1].double(), scores[labels == 0].double()
    greater = (pos.unsqueeze(1) > neg.unsqueeze(0)).double().mean()
    ties = (pos.unsqueeze(1) == neg.unsqueeze(0)).double().mean()
    return float(greater + 0.5 * ties)


def _pca2(z: Tensor) -> Tensor:
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred.double(), full_matrices=False)
    return (centred.double() @ v[:2].T).float()


# ------------------------------------------------------------------------------- claim


def _decide_triplet_and_distance(n: dict) -> tuple[str, str]:
    raw = n["knn_accuracy"]["raw pixels"]
    acc_t = n["knn_accuracy"]["triplet"]
    acc_d = n["knn_accuracy"]["distance match"]
    ratio_t = n["distance_ratio"]["triplet"]
    ratio_d = n["distance_ratio"]["distance match"]
    auc, ece = n["match_auc"], n["match_ece"]
    ok = (
        acc_t >= raw - TOLERANCE
        and acc_d >= raw - TOLERANCE
        and ratio_t <= MAX_DISTANCE_RATIO
        and ratio_d <= MAX_DISTANCE_RATIO
        and auc >= MIN_AUC
        and ece <= MAX_ECE
    )
    return verdict(
        ok,
        f"{K_NEIGHBOURS}-NN test accuracy: triplet {acc_t:.3f}, distance match {acc_d:.3f}, "
        f"raw pixels {raw:.3f} (want ≥ raw - {TOLERANCE}); within/between-class distance "
        f"ratio: triplet {ratio_t:.2f}, distance match {ratio_d:.2f} (raw pixels "
        f"{n['distance_ratio']['raw pixels']:.2f}; want ≤ {MAX_DISTANCE_RATIO}); match "
        f"probability on held-out pairs: AUC {auc:.3f} (want ≥ {MIN_AUC}), ECE {ece:.3f} "
        f"(want ≤ {MAX_ECE}); mean p(match) same {n['mean_match_probability']['same']:.2f}, "
        f"different {n['mean_match_probability']['different']:.2f}",
    )


@claim(
    id="embeddings.triplet_and_distance",
    section=SECTION,
    statement='Loss: TripletMarginLoss, and the Probability Loss Function "FaceNet: '
    'Euclidean Distance -> Probability": trained on labelled examples, both losses give '
    "embeddings in which examples cluster by class, and the second turns the Euclidean "
    "distance between two embeddings into a match probability.",
    method="Train an MLP (64 -> 128 -> 128 -> 16, output L2-normalised as in FaceNet) on the "
    "digits train split twice with Adam: (a) with triplet_margin (margin 0.2) on triplets "
    "drawn from the labels each epoch (anchor, a random example of its class, a random "
    "example of another class); (b) with DistanceMatchLoss, p(match) = σ(b - s·‖x₁ - x₂‖), "
    "scale s and offset b learned, on pairs drawn half same-class, half different-class. "
    "On the test split, measure 5-NN accuracy (train embeddings as the reference set) "
    "against 5-NN on the raw pixels, the ratio of the mean within-class to the mean "
    "between-class distance, and, for (b), the AUC and expected calibration error (10 equal "
    "bins) of p(match) on held-out test pairs drawn the same way (half same-class).",
    criterion=f"'Cluster by class' means: a {K_NEIGHBOURS}-NN classifier on each embedding is "
    f"at least as accurate as on the raw pixels, less {TOLERANCE}, and the mean within-class "
    f"distance is at most {MAX_DISTANCE_RATIO} of the mean between-class distance. "
    f"Supported if both embeddings meet both, and the match probability on held-out pairs "
    f"separates them (AUC ≥ {MIN_AUC}) and is calibrated (ECE ≤ {MAX_ECE}).",
    decide=_decide_triplet_and_distance,
)
def triplet_and_distance(ctx: Context) -> Evidence:
    from ..data import digits

    split = digits(ctx.seed)
    dev = ctx.device
    x_train, y_train = split.x_train.to(dev), split.y_train
    x_test, y_test = split.x_test.to(dev), split.y_test
    sampler = _Sampler(y_train)
    epochs = ctx.pick(3, 40, 120)
    dim, batch = 16, 64

    def train(kind: str, stream: int) -> tuple[nn.Module, nn.Module | None, list[float]]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed * 1_000_003 + stream)  # the initial weights
            model = _Embedding(dim).to(dev)
        head = losses.DistanceMatchLoss(scale=5.0, offset=2.0).to(dev) if kind == "pair" else None
        params = list(model.parameters()) + (list(head.parameters()) if head else [])
        optimizer = torch.optim.Adam(params, lr=2e-3)
        g = ctx.generator(stream)
        history = []
        for _ in ctx.steps(range(epochs), f"{kind} epochs", total=epochs):
            anchors = torch.randperm(len(y_train), generator=g)
            positives = sampler.same(y_train[anchors], g)
            negatives = sampler.other(y_train[anchors], g)
            match = (torch.rand(len(anchors), generator=g) < 0.5).long()
            partners = torch.where(match == 1, positives, negatives)
            total = 0.0
            for start in range(0, len(anchors), batch):
                sl = slice(start, start + batch)
                a = model(x_train[anchors[sl]])
                if head is None:
                    loss = losses.triplet_margin(
                        a, model(x_train[positives[sl]]), model(x_train[negatives[sl]]), 0.2
                    )
                else:
                    loss = head(a, model(x_train[partners[sl]]), match[sl].to(dev))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(anchors[sl])
            history.append(total / len(anchors))
        model.eval()
        return model, head, history

    triplet_model, _, triplet_history = train("triplet", 11)
    pair_model, head, pair_history = train("pair", 12)

    with torch.no_grad():
        emb = {
            "triplet": (triplet_model(x_train).cpu(), triplet_model(x_test).cpu()),
            "distance match": (pair_model(x_train).cpu(), pair_model(x_test).cpu()),
        }
        raw = (split.x_train, split.x_test)
        knn = {"raw pixels": _knn_accuracy(raw[0], y_train, raw[1], y_test)}
        ratio = {"raw pixels": _distance_ratio(raw[1], y_test)}
        for name, (z_train, z_test) in emb.items():
            knn[name] = _knn_accuracy(z_train, y_train, z_test, y_test)
            ratio[name] = _distance_ratio(z_test, y_test)

        # Held-out pairs among test examples, half of the same class.
        test_sampler = _Sampler(y_test)
        g = ctx.generator(13)
        n_pairs = ctx.pick(400, 4000, 10000)
        first = torch.randint(0, len(y_test), (n_pairs,), generator=g)
        match = (torch.rand(n_pairs, generator=g) < 0.5).long()
        second = torch.where(
            match == 1,
            test_sampler.same(y_test[first], g),
            test_sampler.other(y_test[first], g),
        )
        z_test = emb["distance match"][1].to(dev)
        prob = head.probability(z_test[first], z_test[second]).cpu()
    # Pairs of an example with itself (possible among same-class draws) are kept: they are
    # as likely in training, where the same sampler drew them.
    auc = _auc(prob, match)
    ece = float(calibration_error(prob, match, n_bins=10))
    mean_prob = {
        "same": float(prob[match == 1].mean()),
        "different": float(prob[match == 0].mean()),
    }

    figures = _figures(
        emb, y_test, prob, match, knn, ratio, auc, ece, triplet_history, pair_history
    )
    return Evidence(
        numbers={
            "epochs": epochs,
            "embedding_dim": dim,
            "train_examples": len(y_train),
            "test_examples": len(y_test),
            "test_pairs": n_pairs,
            "knn_accuracy": knn,
            "distance_ratio": ratio,
            "match_auc": auc,
            "match_ece": ece,
            "mean_match_probability": mean_prob,
            "learned_scale": float(head.scale.detach()),
            "learned_offset": float(head.offset.detach()),
            "final_train_loss": {
                "triplet": triplet_history[-1],
                "distance match": pair_history[-1],
            },
        },
        figures=figures,
    )


def _figures(emb, y_test, prob, match, knn, ratio, auc, ece, triplet_history, pair_history):
    fig, axes = figure(ncols=2, width=4.6, height=4.2)
    for ax, name in zip(axes, ("triplet", "distance match"), strict=True):
        xy = _pca2(emb[name][1])
        for c in range(10):
            sel = y_test == c
            ax.scatter(
                xy[sel, 0].numpy(),
                xy[sel, 1].numpy(),
                s=7,
                color=_colour(c),
                label=str(c),
                alpha=0.8,
            )
            cx, cy = xy[sel].median(0).values.tolist()
            ax.annotate(
                str(c),
                (cx, cy),
                ha="center",
                va="center",
                fontsize=11,
                fontweight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": _colour(c), "alpha": 0.8},
            )
        ax.set(
            xlabel="principal component 1",
            ylabel="principal component 2",
            title=f"{name} loss: test embeddings\n{K_NEIGHBOURS}-NN accuracy {knn[name]:.3f}, "
            f"distance ratio {ratio[name]:.2f}",
        )
    axes[1].legend(title="digit", ncols=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    scatter = Figure(
        fig,
        "The 16-d test embeddings learned with each loss, projected on their first two "
        "principal components and coloured by digit (labels at each class's median). Titles "
        "give the 5-NN test accuracy and the ratio of the mean within-class to the mean "
        "between-class distance (in 16-d; raw pixels: "
        f"{ratio['raw pixels']:.2f}).",
    )

    fig2, (ax1, ax2) = figure(ncols=2, width=4.6)
    bins = torch.linspace(0, 1, 26).tolist()
    ax1.hist(prob[match == 1].numpy(), bins=bins, alpha=0.7, label="same digit", color=PALETTE[0])
    ax1.hist(
        prob[match == 0].numpy(), bins=bins, alpha=0.7, label="different digits", color=PALETTE[1]
    )
    ax1.set(
        xlabel="match probability σ(b - s·distance)",
        ylabel="held-out test pairs (log scale)",
        yscale="log",
        title=f"Distance -> probability (AUC {auc:.3f}, ECE {ece:.3f})",
    )
    ax1.legend()
    ax2.plot(range(1, len(triplet_history) + 1), triplet_history, label="triplet (margin 0.2)")
    ax2.plot(range(1, len(pair_history) + 1), pair_history, label="distance match (BCE)")
    ax2.set(xlabel="epoch", ylabel="mean training loss", title="Training", yscale="log")
    ax2.legend()
    hist = Figure(
        fig2,
        "Left: the learned match probability for held-out pairs of test digits, same digit "
        "versus different digits. Right: each loss during training.",
    )
    return [scatter, hist]


def _colour(c: int):
    import matplotlib

    return matplotlib.colormaps["tab10"](c)
