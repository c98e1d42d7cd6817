"""`facelm eval ...`: each evaluation lives in its own module with its own `add_parser`."""
from __future__ import annotations

from typing import Any

EVALS: dict[str, str] = {
    "metrics": "facelm.eval.metrics_cli",          # eval metrics
    "faithfulness": "facelm.eval.faithfulness_cli",  # eval faithfulness
    "mcq": "facelm.eval.mcq_cli",                  # eval mcq, eval make-mcq
    "verify": "facelm.eval.verify_cli",            # eval verify (10-fold, ROC, fairness)
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="NLG metrics, multiple-choice benchmarks, verification "
                                    "protocol, faithfulness and fairness reports")
    esub = p.add_subparsers(dest="evaluation", required=True)
    from ..cli import add_group
    for module in EVALS.values():
        add_group(esub, module)
