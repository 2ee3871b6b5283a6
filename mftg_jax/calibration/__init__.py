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
from ._criteria import (
    information_criteria as information_criteria,
    likelihood_ratio as likelihood_ratio,
)
from ._data import load_prices as load_prices, PriceSeries as PriceSeries, Split as Split
from ._fitfile import Fit as Fit, load_fit as load_fit, write_fit_folder as write_fit_folder
from ._forecast import forecast as forecast, ForecastResult as ForecastResult
from ._forecast_plot import plot_forecast as plot_forecast
from ._kalman import (
    filtered_state as filtered_state,
    FilteredState as FilteredState,
    FilterOutput as FilterOutput,
    kalman_filter as kalman_filter,
    negative_log_likelihood as negative_log_likelihood,
    predict_state as predict_state,
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
from ._report import (
    calibration_report as calibration_report,
    mrjd_calibrator as mrjd_calibrator,
)
from ._scores import (
    crps_from_quantiles as crps_from_quantiles,
    crps_from_samples as crps_from_samples,
    crps_gaussian as crps_gaussian,
    crps_levels as crps_levels,
    pinball as pinball,
    score_quantiles as score_quantiles,
)
from ._split import split_series as split_series
from ._stages import remove_stages as remove_stages
from ._state import state_at as state_at, StateAt as StateAt
from ._synthetic import sample_prices as sample_prices
