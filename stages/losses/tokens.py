"""Token-level distillation's loss (DR.DECR): the student's vectors of aligned target-language tokens against
the teacher's vectors of their English tokens, MSE or L1, averaged over tokens and dimensions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stages.config import ConfigError, TokenDistillParams
from stages.models.tokens import token_width

LOSSES = ("mse", "l1")


@dataclass
class TokenTargets:
    """What the loss needs for one target-language text: where its aligned tokens are, and their targets."""

    input_ids: tuple[int, ...]  # the student's tokens of the text, as training reads it (checked in the loss)
    positions: np.ndarray  # aligned token positions, counted from the first real token
    vectors: np.ndarray  # (len(positions), teacher width): the teacher's vectors they learn


def token_loss(student_vectors, teacher_vectors, kind: str):
    """Mean over aligned tokens and dimensions of the squared (mse) or absolute (l1) difference."""
    if kind not in LOSSES:
        raise ConfigError(f"bi_encoder.distillation.token.loss must be one of {', '.join(LOSSES)}, got {kind!r}")
    if student_vectors.numel() == 0:
        return student_vectors.sum() * 0.0
    difference = student_vectors - teacher_vectors
    return (difference**2).mean() if kind == "mse" else torch.abs(difference).mean()


class TokenDistillationLoss(torch.nn.Module):
    """`weight` times `token_loss` (kind `kind`) over one `target` text column whose `label` is the row of
    `targets` to learn from.

    Token targets vary in length per row, so they stay with the loss and the label column carries the row.
    A learned projection maps the student's token vectors to the teacher's width when the two differ.
    """

    def __init__(self, model, targets: list[TokenTargets], teacher_width: int, weight: float, kind: str):
        super().__init__()
        self.model, self.targets = model, targets
        student_width = token_width(model)
        self.projection = torch.nn.Linear(student_width, teacher_width) if student_width != teacher_width else None
        self.weight, self.kind = weight, kind

    def forward(self, features, labels):
        (column,) = features
        vectors = self.model(column)["token_embeddings"]
        students, teachers = [], []
        for b, row in enumerate(labels.tolist()):
            target = self.targets[int(row)]
            mask = column["attention_mask"][b]
            first = int(torch.nonzero(mask)[0])
            ids = column["input_ids"][b][mask.bool()].tolist()
            if tuple(ids) != target.input_ids:
                raise RuntimeError(
                    f"token targets of row {row} were computed for other tokens than training reads "
                    f"({len(target.input_ids)} tokens {list(target.input_ids)[:12]}..., training "
                    f"reads {len(ids)}: {ids[:12]}...): the text must be tokenized as a query"
                )
            students.append(
                vectors[b, first + torch.as_tensor(target.positions, dtype=torch.long, device=vectors.device)]
            )
            teachers.append(torch.as_tensor(target.vectors, device=vectors.device))
        student = torch.cat(students)
        if self.projection is not None:
            student = self.projection(student)
        teacher = torch.cat(teachers).to(student.dtype)
        return {"tokens": self.weight * token_loss(student, teacher, self.kind)}  # a named term: logged apart


def make_token_loss(model, targets: list[TokenTargets], params: TokenDistillParams) -> TokenDistillationLoss:
    """The token loss of `params` (weight, kind) over `targets`, at the teacher's width (that of the first
    target with vectors; the model's own when none has any)."""
    teacher_width = next((t.vectors.shape[1] for t in targets if len(t.vectors)), None) or token_width(model)
    return TokenDistillationLoss(model, targets, teacher_width, params.weight, params.loss)
