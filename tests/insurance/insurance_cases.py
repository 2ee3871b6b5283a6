"""Small consumption-investment-insurance problems shared by the insurance tests."""

from mftg_jax import CompoundPoisson, insurance, NormalJumps, tracking


def market(sigma=(0.2, 0.25), jump_intensity=1.0, t1=1.0):
    return tracking.TrackingGame(
        eta=[1.0, 2.0],
        demand=tracking.Fourier.constant([0.05, 0.02], 2),
        supply=tracking.Fourier.constant(0.0, 2),
        band=tracking.Band([-0.1, -0.1], [0.1, 0.1]),
        costs=tracking.Costs(
            q=[1.0, 1.0],
            qbar=[0.0, 0.0],
            q_terminal=[0.0, 0.0],
            qbar_terminal=[0.0, 0.0],
            r=[0.5, 0.5],
            rbar=[0.0, 0.0],
        ),
        noise=tracking.Noise(
            sigma=list(sigma),
            sigma_o=0.1,
            jumps=CompoundPoisson(jump_intensity, NormalJumps(-0.05, 0.05)),
        ),
        p0=[0.0, 0.0],
        t0=0.0,
        t1=t1,
    )


def regimes(loading=(0.2, 0.5), loss_fraction=(0.6, 0.8), generator=None):
    return insurance.Regimes(
        generator=[[-1.0, 1.0], [2.0, -2.0]] if generator is None else generator,
        riskless_rate=[0.02, 0.01],
        asset_premium=[[0.05, 0.06], [0.0, -0.02]],
        loss_intensity=[0.5, 2.0],
        loss_fraction=list(loss_fraction),
        loading=list(loading),
        bequest=[5.0, 3.0],
    )


def model(q=0.0, convention="compensated", **kw):
    reg_kw = {k: kw.pop(k) for k in ("loading", "loss_fraction", "generator") if k in kw}
    return insurance.InsuranceModel(
        market(**kw),
        regimes(**reg_kw),
        discount=0.1,
        q=q,
        s0=1.0,
        convention=convention,
    )
