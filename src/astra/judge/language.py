"""A light, offline language check: writing system first, then stopwords for Latin script.

Good enough to tell whether an answer is in the language of the query (the judge's
relevance rule); not a general language identifier. Code-like fragments (``key=value``,
``snake_case`` identifiers, JSON, URLs, numbers) are ignored, so an answer that quotes
tool outputs is judged by its sentences. Returns None when unsure: the rule then does not
fire.
"""

from __future__ import annotations

import re
import unicodedata

_STOP: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are was were of to in for with that this what which you your my it on be "
                    "can please how from at by an will would i me we our there their have has here these "
                    "all come directly results found next into about do does did not".split()),
    "de": frozenset("der die das und ist sind nicht ein eine einen einem mit für von zu im den dem des ich "
                    "sie wir ihr ihre ihrer mein meine bitte wie was auch auf aus bei oder aber noch nach "
                    "über hier alle diese werte stammen direkt ergebnis ergebnisse anfrage nächstes schritt "
                    "schritte wird kann habe gibt".split()),
    "fr": frozenset("le la les et est sont un une des du de pour avec que qui dans sur pas je vous nous mon "
                    "ma mes votre vos quel quelle quels au aux ce cette il elle voici ces toutes valeurs "
                    "proviennent directement résultats demande étape étapes".split()),
    "es": frozenset("el la los las y es son un una unos de del para con que en por no mi mis su sus cuál "
                    "qué como cómo está hay al lo se esto todos estos valores vienen directamente "
                    "resultados solicitud paso pasos encontré".split()),
    "it": frozenset("il lo la i gli le e è sono un una di del della delle per con che in non mio mia qual "
                    "quale come al alla ci si ecco cosa ho tutti questi valori vengono direttamente "
                    "risultati richiesta passo passi".split()),
    "pt": frozenset("o a os as e é são um uma de do da dos das para com que em no na não meu minha qual "
                    "como está ao se isto todos estes valores vêm diretamente resultados pedido passo "
                    "passos encontrei".split()),
    "nl": frozenset("de het een en is zijn van voor met dat die in op niet ik u uw mijn wat hoe er aan bij "
                    "ook naar dit al deze waarden komen rechtstreeks resultaten vraag stap stappen".split()),
}

_CODE = re.compile(
    r"https?://\S+|\S+@\S+|`[^`]*`|\{[^{}]*\}|\[[^\[\]]*\]|"
    r"\b[\w.-]+=(\"[^\"]*\"|[^,;\n]*)|\b\w*_\w*\b|\b\w*\d\w*\b"
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

_SCRIPTS = (
    ("ja_kana", (0x3040, 0x30FF)),
    ("han", (0x4E00, 0x9FFF)),
    ("ko", (0xAC00, 0xD7AF)),
    ("ru", (0x0400, 0x04FF)),
    ("ar", (0x0600, 0x06FF)),
    ("el", (0x0370, 0x03FF)),
    ("he", (0x0590, 0x05FF)),
    ("hi", (0x0900, 0x097F)),
    ("th", (0x0E00, 0x0E7F)),
)


def _script_counts(text: str) -> tuple[int, dict[str, int]]:
    latin = 0
    other: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        cp = ord(ch)
        for name, (lo, hi) in _SCRIPTS:
            if lo <= cp <= hi:
                other[name] = other.get(name, 0) + 1
                break
        else:
            if "LATIN" in unicodedata.name(ch, ""):
                latin += 1
    return latin, other


_MARKS = {"ñ": {"es": 2}, "¿": {"es": 2}, "¡": {"es": 2}, "ß": {"de": 2}, "ä": {"de": 1}, "ö": {"de": 1},
          "ü": {"de": 1}, "ã": {"pt": 2}, "õ": {"pt": 2}, "ç": {"fr": 1, "pt": 1}, "è": {"it": 1, "fr": 1},
          "ê": {"fr": 1, "pt": 1}, "ù": {"fr": 1, "it": 1}, "ì": {"it": 1}, "ò": {"it": 1}}


def detect_language(text: str | None, *, strict: bool = False) -> str | None:
    """An ISO-639-1-like code (``en``, ``de``, ``fr``, ``es``, ``it``, ``pt``, ``nl``,
    ``zh``, ``ja``, ``ko``, ``ru``, ``ar``, ``el``, ``he``, ``hi``, ``th``) or None when
    unsure. ``strict`` asks for a wider stopword margin (use it where a wrong answer costs)."""
    if not text or not text.strip():
        return None
    prose = _CODE.sub(" ", text)
    latin, other = _script_counts(prose)
    n_other = sum(other.values())
    if n_other >= 4 and n_other * 2 >= latin:
        kana, han = other.get("ja_kana", 0), other.get("han", 0)
        if kana + han >= max(other.values(), default=0):
            return "ja" if kana >= max(2, 0.05 * (kana + han)) else "zh"
        return max(other, key=lambda k: other[k])
    words = [w.lower() for w in _WORD.findall(prose)]
    if not words:
        return None
    hits = {lang: float(sum(1 for w in words if w in stop)) for lang, stop in _STOP.items()}
    lowered = prose.lower()
    for ch, boosts in _MARKS.items():
        if ch in lowered:
            for lang, b in boosts.items():
                hits[lang] += b
    ranked = sorted(hits.items(), key=lambda kv: -kv[1])
    (best, n1), (_, n2) = ranked[0], ranked[1]
    margin = 2 if strict else 1
    if n1 >= 2 and n1 >= 1.5 * n2 and n1 - n2 >= margin:
        return best
    if not strict and n1 >= 1 and n2 == 0 and len(words) <= 6:
        return best
    return None


def same_language(a: str | None, b: str | None) -> bool | None:
    """True/False when both languages are known, else None (undecided)."""
    if a is None or b is None:
        return None
    return a == b
