"""The whole quantisation of one checkpoint, as `cellsim quantize` runs it:
calibrate on trajectories, choose the clipping percentiles by measured int8 loss,
quantise (PTQ), optionally fine-tune (QAT), and score float, PTQ and QAT on the
same seeded rollouts.

Percentiles are chosen on rollouts with another seed than the reported ones, so
the reported losses are not the ones the choice was tuned on."""
from dataclasses import dataclass, field

import numpy as np

from cellsim.intspec import IntParams

from .calibrate import DEFAULT_PERCENTILES, Calibration, CalibrationPlan, calibrate
from .evaluate import EvalPlan, float_losses, int_losses
from .ptq import Scales, quantize_model
from .qat import QATConfig, QuantisationAwareTrainer

TRAINING_HORIZON = 96  # the recipe's longest episode, when a checkpoint does not say


@dataclass(frozen=True)
class Plans:
    calibration: CalibrationPlan
    selection: EvalPlan
    evaluation: EvalPlan

    @classmethod
    def for_horizon(cls, horizon: int, seed: int = 0, eval_batch: int = 8) -> "Plans":
        """Plans scaled to the episode length the model was trained for: scored
        when grown (one episode), after three episodes, and one episode after damage."""
        return cls(
            calibration=CalibrationPlan(growth_steps=horizon, persist_steps=max(3 * horizon, 320 * horizon // 96),
                                        regrow_steps=horizon, persist_every=max(1, horizon // 12), seed=seed),
            selection=EvalPlan(batch=max(2, eval_batch // 2), grown_step=horizon, persist_step=2 * horizon,
                               regrow_steps=horizon, seed=seed + 1000),
            evaluation=EvalPlan(batch=eval_batch, grown_step=horizon, persist_step=3 * horizon,
                                regrow_steps=horizon, seed=seed + 2000))


@dataclass
class QuantizeResult:
    scales: Scales
    percentiles: tuple          # (state, hidden) clipping percentiles chosen
    selection: list             # [(state %, hidden %, mean loss)] tried
    ptq: IntParams
    qat: IntParams | None
    chosen: str                 # "ptq" or "qat": the one the genome holds
    losses: dict = field(default_factory=dict)  # "float"/"ptq"/"qat" -> {label: loss}
    qat_losses: list = field(default_factory=list)  # training loss per QAT iteration
    calibration: Calibration | None = None

    @property
    def params(self) -> IntParams:
        return self.qat if self.chosen == "qat" else self.ptq


def mean_loss(losses: dict) -> float:
    return float(np.mean(list(losses.values())))


def choose_percentiles(model, calibration: Calibration, target, plan: EvalPlan,
                       candidates=DEFAULT_PERCENTILES, log=print):
    """Coordinate search: the state percentile with hidden at max, then the
    hidden percentile; returns ((state %, hidden %), tried)."""
    tried = {}

    def score(state_p, hidden_p):
        if (state_p, hidden_p) not in tried:
            params = quantize_model(model, calibration.scales(state_p, hidden_p))
            tried[(state_p, hidden_p)] = mean_loss(int_losses(params, target, model.fire_rate,
                                                              model.torus, plan))
            log(f"  calibration: state p{state_p:g}, hidden p{hidden_p:g} -> int8 loss "
                f"{tried[(state_p, hidden_p)]:.6f}")
        return tried[(state_p, hidden_p)]

    best_state = min(candidates, key=lambda p: score(p, 100.0))
    best_hidden = min(candidates, key=lambda p: score(best_state, p))
    return (best_state, best_hidden), [(s, h, v) for (s, h), v in tried.items()]


def quantize_checkpoint(model, target, *, qat_config: QATConfig | None, plans: Plans,
                        progress: bool = True, log=print) -> QuantizeResult:
    """Calibrate, PTQ, QAT (when qat_config has iterations), and evaluate."""
    _, height, width = np.asarray(target).shape
    log(f"calibrating on {plans.calibration.batch} float trajectories "
        f"(growth {plans.calibration.growth_steps}, persistence to {plans.calibration.persist_steps}, "
        f"regrowth {plans.calibration.regrow_steps} steps after damage)")
    calibration = calibrate(model, height, width, plans.calibration)
    percentiles, tried = choose_percentiles(model, calibration, target, plans.selection, log=log)
    scales = calibration.scales(*percentiles)
    ptq = quantize_model(model, scales)
    result = QuantizeResult(scales=scales, percentiles=percentiles, selection=tried, ptq=ptq,
                            qat=None, chosen="ptq", calibration=calibration)
    if qat_config is not None and qat_config.iterations > 0:
        log(f"quantisation-aware fine-tuning: {qat_config.iterations} iterations, lr {qat_config.lr:g}, "
            f"{qat_config.experiment}, batch {qat_config.batch}")
        trainer = QuantisationAwareTrainer(model, scales, target, qat_config)
        tuned = trainer.run(progress=progress)
        result.qat = quantize_model(tuned, scales)
        result.qat_losses = trainer.losses
        ptq_selection = min(v for s, h, v in tried if (s, h) == percentiles)
        qat_selection = mean_loss(int_losses(result.qat, target, model.fire_rate, model.torus,
                                             plans.selection))
        log(f"  selection rollouts: PTQ {ptq_selection:.6f}, QAT {qat_selection:.6f}")
        result.chosen = "qat" if qat_selection <= ptq_selection else "ptq"
    log(f"scoring on {plans.evaluation.batch} seeded rollouts")
    result.losses["float"] = float_losses(model, target, plans.evaluation)
    result.losses["ptq"] = int_losses(ptq, target, model.fire_rate, model.torus, plans.evaluation)
    if result.qat is not None:
        result.losses["qat"] = int_losses(result.qat, target, model.fire_rate, model.torus,
                                          plans.evaluation)
    return result


def loss_table(result: QuantizeResult, qat_iterations: int) -> str:
    """Float, PTQ and QAT losses side by side, with the int8/float factors."""
    labels = list(result.losses["float"])
    rows = [("float32", result.losses["float"]), ("int8 PTQ", result.losses["ptq"])]
    if "qat" in result.losses:
        rows.append((f"int8 QAT ({qat_iterations} it)", result.losses["qat"]))
    width = max(len(name) for name, _ in rows) + 2
    lines = ["loss vs target".ljust(width) + "".join(f"{label:>15}" for label in labels)]
    for name, losses in rows:
        lines.append(name.ljust(width) + "".join(f"{losses[label]:>15.6f}" for label in labels))
    for name, losses in rows[1:]:
        factors = [losses[label] / result.losses["float"][label] if result.losses["float"][label] > 0
                   else float("nan") for label in labels]
        lines.append(f"{name.split(' (')[0]} / float".ljust(width)
                     + "".join(f"{factor:>14.3f}x" for factor in factors))
    return "\n".join(lines)
