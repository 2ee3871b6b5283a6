"""Calibration of the price game to market prices: data loading, the equilibrium's reduced
form, its exact Kalman likelihood, gradient-based fits, baselines, simulated moments, reports.
"""

from ._baselines import AR1 as AR1, fit_ar1 as fit_ar1
from ._calibrate import (
    calibrate as calibrate,
    CalibrationResult as CalibrationResult,
    CalibrationWarning as CalibrationWarning,
    default_checkpoint as default_checkpoint,
    PriceCalibrator as PriceCalibrator,
)
from ._checks import check_fitted_level as check_fitted_level, check_series as check_series
from ._data import (
    load_prices as load_prices,
    PriceSeries as PriceSeries,
    Split as Split,
    split_series as split_series,
)
from ._kalman import (
    FilterOutput as FilterOutput,
    kalman_filter as kalman_filter,
    negative_log_likelihood as negative_log_likelihood,
)
from ._moments import (
    calibrate_moments as calibrate_moments,
    MomentResult as MomentResult,
    price_moments as price_moments,
)
from ._parametrisation import Parametrisation as Parametrisation
from ._plots import plot_calibration as plot_calibration
from ._price_model import (
    game_from_identified as game_from_identified,
    LinearPriceModel as LinearPriceModel,
    price_model_from_game as price_model_from_game,
    seasonal_transfer as seasonal_transfer,
    StructuralDefaults as StructuralDefaults,
)
from ._report import calibration_report as calibration_report
from ._synthetic import sample_prices as sample_prices
