"""leadqual: qualify sales leads with reasons.

The library is the product; the CLI, the service and the dashboard are thin
shells over these names.
"""

from leadqual.engine.reference import evaluate, evaluate_all
from leadqual.engine.result import Qualification, Reason
from leadqual.errors import LeadqualError, ModelError
from leadqual.facts.dataset import Facts, FactSet
from leadqual.model.load import is_valid, load_model, load_model_text
from leadqual.model.schema import Model

__all__ = [
    "FactSet",
    "Facts",
    "LeadqualError",
    "Model",
    "ModelError",
    "Qualification",
    "Reason",
    "evaluate",
    "evaluate_all",
    "is_valid",
    "load_model",
    "load_model_text",
]
