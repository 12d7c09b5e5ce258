"""The moment-arm calibration report a person reads (the JSON summary carries the same numbers)."""

from __future__ import annotations

import math

from myoedge.calibrate.refit import MomentArmCalibration


def format_report(cal: MomentArmCalibration) -> str:
    fit = cal.fit
    lo, hi = (math.degrees(t) for t in fit.theta_range)
    sources = ", ".join(sorted({t.torque_source for t in cal.trials}))
    lines = [f"moment-arm fit of {cal.profile.subject} ({cal.profile.joint}): {len(cal.trials)} trials, "
             f"{fit.n_samples} samples, θ {lo:.0f}°..{hi:.0f}°; forces from {cal.force_source}, torque from "
             f"{sources}" + (f"; {cal.iterations} rounds of force estimate and fit"
                             if cal.iterations > 1 else ""),
             f"  torque RMSE {cal.rmse_before:.3f} → {fit.rmse_after:.3f} N·m "
             f"({100 * fit.rmse_after / max(cal.rmse_before, 1e-300):.0f}% of before; torque RMS "
             f"{fit.torque_rms:.3f} N·m)",
             f"  regularisation λ = {fit.regularisation:.3g} ({fit.rule}); condition number "
             f"{fit.condition_number:.3g}; {fit.active_constraints} bound(s) active",
             "  muscle      change (RMS, mean)   data share   variance inflation"]
    for m in fit.muscles:
        lines.append(f"  {m['muscle']:<10} {100 * m['rms_change']:6.1f}% {100 * m['mean_change']:+7.1f}%"
                     f"   {100 * m['data_share']:8.0f}%   {m['vif']:10.1f}")
    if cal.segment is not None:
        s = cal.segment.summary()
        b, a = s["before"], s["after"]
        lines.append(f"  segment: inertia {b['inertia']:.4f} → {a['inertia']:.4f} kg·m², m·l_c "
                     f"{b['mass'] * b['com']:.3f} → {a['mass'] * a['com']:.3f} kg·m, damping "
                     f"{b['damping']:.3f} → {a['damping']:.3f}, stiffness {b['stiffness']:.3f} → "
                     f"{a['stiffness']:.3f}; equation-of-motion RMSE {s['rmse_before_nm']:.3f} → "
                     f"{s['rmse_after_nm']:.3f} N·m")
    lines += [f"  warning: {w}" for w in fit.warnings]
    return "\n".join(lines)
