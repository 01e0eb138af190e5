"""Plain-language explanations of the terms the app and its figures use, for viewers who are not ML people.

One entry per term: a one-line ``short`` text (tooltips, ``help=``) and a ``long`` one (the glossary).
Pages attach ``help_text(term)`` wherever a term appears and link to the glossary for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """A glossary entry."""

    name: str
    short: str
    long: str


TERMS: dict[str, Term] = {
    t.name: t
    for t in (
        Term(
            "patch token",
            "The model's description of one 8 × 8-pixel square of a chip: a list of 1,024 numbers.",
            "Clay cuts each chip into small squares (patches) and describes each with 1,024 numbers, its token. "
            "A 256-pixel chip has 32 × 32 = 1,024 patch tokens: detailed, but large.",
        ),
        Term(
            "embedding",
            "A list of numbers that describes an image (or a patch) so that similar ones get similar numbers.",
            "The model's summary of what it sees. Two embeddings that are close describe things the model "
            "finds alike; search, clustering and maps of similarity all work on embeddings.",
        ),
        Term(
            "CLS",
            "One extra token the model learns as a summary of the whole chip (its 'class' token).",
            "Besides the patch tokens, Clay outputs a CLS token: one vector meant to summarise the chip. It is the "
            "usual 'image embedding' of Clay, and the baseline every other way of summarising is compared with.",
        ),
        Term(
            "mean pooling",
            "Averaging all patch tokens of a chip into one vector.",
            "The simplest way to squeeze 1,024 patch tokens into one image embedding: take their average. Cheap and "
            "common, but small details that only a few patches see are averaged away.",
        ),
        Term(
            "GeM pooling",
            "A 'generalised mean' of the patch tokens, between the average and the maximum.",
            "Generalised-mean pooling raises values to a power before averaging, so strong, rare features count more "
            "than in a plain average but less than in a maximum.",
        ),
        Term(
            "max pooling",
            "Keeping, for each of the 1,024 numbers, its largest value over all patches.",
            "Max pooling keeps the strongest response of every feature anywhere in the chip; it notices rare things "
            "but forgets where and how often they occur.",
        ),
        Term(
            "learned aggregator",
            "A small network trained to squeeze the patch tokens into one vector (linear, attention).",
            "Instead of a fixed average, a few layers learn which patches matter (attention pooling) "
            "or how to mix them (linear), using the place and time of the chip too.",
        ),
        Term(
            "UMAP",
            "A method that draws high-dimensional embeddings as points on a flat map, keeping neighbours together.",
            "UMAP places each embedding as a point so that embeddings that are close in the model's "
            "1,024-number space stay close on the plot. Distances between far-apart clusters mean little; "
            "neighbourhoods are what it keeps.",
        ),
        Term(
            "trustworthiness",
            "How well the 2-D map keeps each point's true nearest neighbours (1 = perfectly).",
            "Trustworthiness@10 checks, for each point, whether its 10 neighbours on the flat map were also near in "
            "the original space. Close to 1: the picture can be trusted locally.",
        ),
        Term(
            "PSNR",
            "Peak signal-to-noise ratio: how close a reconstruction is to the original, in decibels; higher is better.",
            "PSNR compares every pixel of the reconstruction with the original. +3 dB means "
            "about half the error. Around 20-30 dB is a recognisable image. No method here has a proven "
            "ceiling: the table compares each one with Clay's own masked reconstruction and with simple baselines.",
        ),
        Term(
            "SSIM",
            "Structural similarity: whether shapes, edges and textures match (0 to 1, higher is better).",
            "SSIM looks at local structure rather than pixel-by-pixel error, so it follows what a person notices: "
            "blurred field edges lower it even when average brightness is right.",
        ),
        Term(
            "spectral angle",
            "How much the 'colour' across all bands differs, as an angle in degrees (0 = identical).",
            "The spectral angle (SAM) treats each pixel's band values as an arrow and measures the "
            "angle between original and reconstruction. It ignores brightness and checks the spectral signature "
            "that tells crops, water and soil apart.",
        ),
        Term(
            "NP@k",
            "Neighbourhood preservation: the share of a chip's k most similar chips that stay the same with "
            "one vector instead of all tokens.",
            "NP@k asks: if we search with the single vector, do we find the same "
            "k nearest chips as with all patch tokens? 1 means search results are unchanged.",
        ),
        Term(
            "reconstruction",
            "Turning embeddings back into pixels with Clay's decoder, to see what they still hold.",
            "Clay was trained to fill in hidden patches, so it has a decoder that turns tokens into pixels. "
            "Feeding it tokens rebuilt from one vector shows, as a picture, what that vector kept.",
        ),
    )
}

#: Other spellings that appear in the app, mapped to their entry.
ALIASES = {
    "cls token": "CLS",
    "patch tokens": "patch token",
    "patch": "patch token",
    "mean": "mean pooling",
    "gem": "GeM pooling",
    "max": "max pooling",
    "sam": "spectral angle",
    "trustworthiness@10": "trustworthiness",
    "np@k": "NP@k",
    "linear": "learned aggregator",
    "attention": "learned aggregator",
    "umap": "UMAP",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "embeddings": "embedding",
    "image embedding": "embedding",
}


def lookup(term: str) -> Term:
    """The entry of ``term`` (any case, or an alias); KeyError when the glossary lacks it."""
    if term in TERMS:
        return TERMS[term]
    key = term.strip().lower()
    for name, entry in TERMS.items():
        if name.lower() == key:
            return entry
    return TERMS[ALIASES[key]]


def help_text(*terms: str) -> str:
    """Tooltip text explaining ``terms`` (one line each, bold term), for Streamlit's ``help=``."""
    return "  \n".join(f"**{lookup(t).name}**: {lookup(t).short}" for t in terms)


def markdown() -> str:
    """The whole glossary as Markdown (the glossary page and the CLI's docs)."""
    return "\n\n".join(f"**{t.name}** — {t.long}" for t in TERMS.values())
