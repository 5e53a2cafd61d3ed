"""toymodel: the models, data, metrics and theory of "Toy Models of Superposition"
(Elhage et al., 2022), and the machinery that checks its claims against any implementation."""

from .result import ContractError, Result
from .spec import FeatureGroup, Spec, SpecError, TrainConfig, density_levels, geometric_importance

__version__ = "0.1.0"

__all__ = [
    "ContractError",
    "FeatureGroup",
    "Result",
    "Spec",
    "SpecError",
    "TrainConfig",
    "__version__",
    "density_levels",
    "geometric_importance",
]
