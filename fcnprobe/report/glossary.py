"""The report's one vocabulary: glossary terms, their anchors, and links from every use.

``GLOSSARY`` holds each term once. In templates, ``term('TRF')`` renders a link
to the term's entry (an unknown term raises with near matches), and the
``link_terms`` filter escapes a plain sentence and links the first use of every
term in it. ``install(env)`` registers both on a Jinja environment. Torch-free.

The FCN categories follow issue 15: FCN (convolution only), FCN+pool (an FCN
with a parameter-free global pool at the output only) and global-op (global
pooling, attention or an FC layer inside the network).
"""
from __future__ import annotations

import dataclasses
import difflib
import re

import jinja2
from markupsafe import Markup, escape


@dataclasses.dataclass(frozen=True)
class Term:
    name: str  # as written on the page
    definition: str
    aliases: tuple[str, ...] = ()  # other spellings linked to the same entry

    @property
    def anchor(self) -> str:
        return "g-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


TERMS = (
    Term("TRF", "Theoretical receptive field: the square of input pixels that can change one output pixel at "
         "all, computed from kernel sizes, strides and dilations; given as its side in px.",
         ("theoretical receptive field",)),
    Term("TRF radius", "(TRF side − 1) / 2, in px: the largest Chebyshev distance from an output pixel at which "
         "an input pixel can still change it."),
    Term("reach", "The largest cue distance (px) at which a model can in principle answer a context task: its "
         "TRF radius when one cue decides the answer; TRF side − 1 + cue size − 1 when one TRF window must "
         "hold a pixel of each of two cues. Beyond it, the held-out pairs differ only outside the window, "
         "so accuracy is at most chance by construction."),
    Term("ERF", "Effective receptive field: the mean |∂ output unit / ∂ input pixel| over many inputs "
         "(Luo et al. 2016), i.e. how strongly each input pixel actually moves the output.",
         ("effective receptive field",)),
    Term("ERF 50% square", "The side (px) of the smallest square centred on the output unit that holds 50% of "
         "the ERF's mass (column 'HCA side at 50%'; RepLKNet's high-contribution area)."),
    Term("failure distance", "The first distance bin (px) whose held-out accuracy falls below the midpoint "
         "between chance and 1; tables give the median over seeds."),
    Term("chance", "The accuracy of the best constant guess on the held-out data, which is not "
         "1 / (number of classes) when classes are unbalanced."),
    Term("constant-guess baseline", "The score of a predictor that ignores its input and always outputs the "
         "best single answer (the majority class, the mean box, the mean count) on the same held-out data. "
         "A design must beat it to have learned anything.", ("constant guess",)),
    Term("MACs", "Multiply-accumulate operations per forward pass of one image; one MAC = 2 FLOPs "
         "(fvcore's convention: one fused multiply-add counts once).", ("MAC",)),
    Term("FCN", "Fully convolutional network: convolution only, with no global pooling, no fully connected "
         "layer and no attention anywhere (fcn, dilated, fcn_encdec, coordconv and their deep variants)."),
    Term("FCN+pool", "An FCN whose dense map is reduced by a parameter-free global pool at the output only: "
         "how an FCN answers an image-level question."),
    Term("global-op", "A design with global pooling, attention or a fully connected layer inside the network "
         "(fcn_gap, nonlocal, cnn_fc, attention): the fixes the report compares against.", ("global op",)),
)
GLOSSARY: dict[str, Term] = {t.name: t for t in TERMS}
_BY_SPELLING = {s: t for t in TERMS for s in (t.name, *t.aliases)}
# longest spelling first, so 'TRF radius' wins over 'TRF'; word boundaries that allow '+' and '%' inside
_PATTERN = re.compile(r"(?<![\w#-])(" + "|".join(re.escape(s) for s in sorted(_BY_SPELLING, key=len, reverse=True))
                      + r")(?![\w+-])")


def lookup(name: str) -> Term:
    """The term spelled ``name`` (or one of its aliases); a clear error with near matches otherwise."""
    if name in _BY_SPELLING:
        return _BY_SPELLING[name]
    near = difflib.get_close_matches(name, list(_BY_SPELLING), n=3)
    hint = f" did you mean {', '.join(near)}?" if near else ""
    raise KeyError(f"unknown glossary term {name!r};{hint} available: {', '.join(GLOSSARY)}")


def term(name: str, text: str | None = None) -> Markup:
    """A link to ``name``'s glossary entry, showing ``text`` (default: the name)."""
    t = lookup(name)
    return Markup('<a class="term" href="#{}" title="{}">{}</a>').format(t.anchor, t.definition, text or name)


def link_terms(text: object) -> Markup:
    """Escape ``text`` and link the first use of each glossary term in it."""
    if isinstance(text, Markup):
        return text  # already HTML: leave its markup alone
    done: set[str] = set()

    def sub(m: re.Match) -> str:
        t = _BY_SPELLING[m.group(1)]
        if t.name in done:
            return m.group(1)
        done.add(t.name)
        return str(term(m.group(1)))

    return Markup(_PATTERN.sub(sub, str(escape("" if text is None else text))))


def install(env: jinja2.Environment) -> jinja2.Environment:
    """Register ``term``, ``glossary`` and the ``link_terms`` filter on ``env``."""
    env.globals.update(term=term, glossary=TERMS)
    env.filters["link_terms"] = link_terms
    return env
