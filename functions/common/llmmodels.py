"""Which LLM models a scan may use: one allow-list per use, read by `scan` (it refuses a request
for any other model, 422 `MODEL_NOT_ALLOWED`) and by `scan-worker` (it never sends any other).
It is the `config=` section of both functions (`Function(config=ScanModels)`).

- `LLM_VISION_MODEL`: the model that classifies the photo when the request names none (gpt-4o-mini)
- `LLM_ANSWER_MODEL`: the model that writes the answer when the request names none (gpt-4o-mini)
- `LLM_VISION_MODELS`, `LLM_ANSWER_MODELS`: comma lists of the other models a request may name for
  that use; the default is always allowed

A request's `model` is accepted when it is allowed for at least one of the two uses; each call then
uses it where it is allowed and that use's default elsewhere.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

Use = Literal["vision", "answer"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value[:100]!r} is not a model name like gpt-4o-mini")
    return value


class ScanModels(BaseModel):
    model_config = ConfigDict(frozen=True)

    llm_vision_model: str = "gpt-4o-mini"
    llm_answer_model: str = "gpt-4o-mini"
    llm_vision_models: tuple[str, ...] = ()
    llm_answer_models: tuple[str, ...] = ()

    @field_validator("llm_vision_models", "llm_answer_models", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("llm_vision_model", "llm_answer_model")
    @classmethod
    def _check_default(cls, value: str) -> str:
        return _name(value.strip())

    @field_validator("llm_vision_models", "llm_answer_models")
    @classmethod
    def _check_list(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_name(item) for item in value)

    def allowed(self, use: Use) -> tuple[str, ...]:
        """The models of one use, its default first."""
        default, others = (
            (self.llm_vision_model, self.llm_vision_models)
            if use == "vision"
            else (self.llm_answer_model, self.llm_answer_models)
        )
        return tuple(dict.fromkeys((default, *others)))

    def offered(self) -> tuple[str, ...]:
        """Every model a request may name."""
        return tuple(dict.fromkeys((*self.allowed("vision"), *self.allowed("answer"))))

    def pick(self, use: Use, requested: str | None) -> str:
        """The model to send for `use`: the requested one when it is allowed there, else the default."""
        allowed = self.allowed(use)
        return requested if requested in allowed else allowed[0]
