"""Consumption, investment and insurance over energy assets (slides, equations (12)-(13)).

An agent with log utility consumes, invests in assets whose log-prices follow the regulated
equilibrium of [`mftg_jax.tracking`][], and insures a proportional Poisson loss, with a
regime chain as common noise (docs/insurance.md). `solve` gives the $q = 0$ closed forms,
`policy_value` the exact objective of a proportional policy, `simulate_paths` the Monte Carlo of
wealth, `optimise_policy` the $q > 0$ feedback by gradient descent and `certify_policy` its
perturbation certificate.
"""

from ._config import (
    load_model as load_model,
    model_from_dict as model_from_dict,
    run_settings as run_settings,
)
from ._investment import log_growth as log_growth, optimal_investment as optimal_investment
from ._model import InsuranceModel as InsuranceModel, Regimes as Regimes
from ._montecarlo import (
    mean_and_stderr as mean_and_stderr,
    objective_samples as objective_samples,
    pair_means as pair_means,
    simulate_paths as simulate_paths,
    WealthPaths as WealthPaths,
)
from ._optimise import (
    certify_policy as certify_policy,
    fit_feedback as fit_feedback,
    OptimisationResult as OptimisationResult,
    optimise_policy as optimise_policy,
    PolicyCertificate as PolicyCertificate,
    sample_objective as sample_objective,
    sampling_errors as sampling_errors,
    SamplingErrors as SamplingErrors,
)
from ._plots import plot_policy as plot_policy, plot_wealth as plot_wealth
from ._policy import (
    AbstractPolicy as AbstractPolicy,
    alpha_closed_form as alpha_closed_form,
    ClosedFormPolicy as ClosedFormPolicy,
    FeedbackPolicy as FeedbackPolicy,
    uninsured as uninsured,
    WithoutInsurance as WithoutInsurance,
)
from ._returns import (
    asset_returns as asset_returns,
    AssetReturns as AssetReturns,
    jump_quadrature as jump_quadrature,
)
from ._rules import insurance_fraction as insurance_fraction, loss_growth as loss_growth
from ._solution import (
    excess_returns as excess_returns,
    InsuranceSolution as InsuranceSolution,
    policy_value as policy_value,
    solve as solve,
    solve_alpha as solve_alpha,
)
