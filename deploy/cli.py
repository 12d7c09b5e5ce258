"""Verbs of the deploy layer: ``build-engine`` (TensorRT, on the Jetson) and ``export-firmware``.

Both import their heavy parts inside the handler, so ``myoedge --help`` works on a machine without
TensorRT and ``export-firmware`` never needs it.
"""

from __future__ import annotations

from myoedge.ground.errors import InputError


def register(sub) -> None:
    from myoedge.deploy.precision import PRECISIONS, RELATIVE_TOLERANCE
    from myoedge.ground.verbs import add_verb

    tolerances = ", ".join(f"{p} {RELATIVE_TOLERANCE[p]:g}" for p in PRECISIONS)
    p = add_verb(sub, "build-engine", _build_engine, help="build and verify a TensorRT engine for a bundle",
                 description="Build a TensorRT engine from a model bundle's ONNX graph on this machine "
                             "(engines do not move between GPU architectures or TensorRT versions), cache it "
                             "as <DIR>/model.engine with a sidecar naming its key, and check it against ONNX "
                             "Runtime on the bundle's test vectors. A cached engine whose key (compute "
                             "capability, TensorRT version, ONNX sha256, precision) matches is reused; any "
                             "other is rebuilt. Max deviation allowed, relative to each output's peak: "
                             f"{tolerances}.")
    p.add_argument("bundle", metavar="BUNDLE", help="model bundle folder")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine precision (default fp32)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for model.engine and its sidecar (default: the bundle folder, where "
                        "`myoedge run` looks for it)")
    p.add_argument("--workspace-mib", type=int, default=256,
                   help="builder scratch memory limit in MiB (default 256)")
    p.add_argument("--force", action="store_true", help="rebuild even when the cached engine matches")

    p = add_verb(sub, "export-firmware", _export_firmware,
                 help="write the C headers for the amplifier firmware (frame, CRC, envelope, test vectors)",
                 description="Write myoedge_frame.h (frame layout, sync word, CRC-32 table and function), "
                             "myoedge_envelope.h (Q31 coefficients and shifts for CMSIS-DSP) and "
                             "myoedge_test_vectors.h (encoded frames, filter input and expected Q31 output), "
                             "all generated from the host's own definitions. The envelope comes from BUNDLE "
                             "or from --envelope.")
    p.add_argument("bundle", metavar="BUNDLE", nargs="?", default=None,
                   help="model bundle folder whose envelope the firmware must compute")
    p.add_argument("--envelope", metavar="CONFIG.json", default=None,
                   help="envelope config fields as JSON (fs_hz, out_rate_hz, input_bits, ...) instead of "
                        "a bundle")
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write the headers into")
    p.add_argument("--overwrite", action="store_true",
                   help="replace headers already in --out (each kept as <name>.prev)")
    p.add_argument("--vector-samples", type=int, default=600, help="length of the filter test vector")
    p.add_argument("--seed", type=int, default=0, help="seed of the test vectors")


def _build_engine(args) -> dict:
    from myoedge.deploy.engine import build_engine
    from myoedge.ground.fileio import check_output

    if args.out is not None:  # a cache folder: written into, its engine rebuilt when stale
        check_output(args.out, folder=True, merge=True)
    result = build_engine(args.bundle, precision=args.precision, out_dir=args.out,
                          workspace_mib=args.workspace_mib, force=args.force)
    key = result.key
    how = "reused" if result.reused else f"built in {result.build_seconds:.1f} s"
    print(f"engine {result.engine_path} ({how}; {result.plan.describe()}; sm {key.compute_capability} "
          f"{result.target.device_name}, TensorRT {key.tensorrt_version})")
    print(f"  {result.reason}")
    print(f"  vs ONNX Runtime on {len(result.report.outputs)} outputs: {result.report.summary()}")
    return result.to_dict()


def _export_firmware(args) -> dict:
    from myoedge.deploy.firmware import (
        FIRMWARE_FILES,
        design_from_bundle,
        design_from_config_file,
        export_firmware,
    )
    from myoedge.ground.fileio import check_output

    if (args.bundle is None) == (args.envelope is None):
        raise InputError("give either a BUNDLE or --envelope CONFIG.json (exactly one)")
    out = check_output(args.out, folder=True, merge=True, inputs=[args.bundle, args.envelope])
    for name in FIRMWARE_FILES:
        check_output(out / name, inputs=[args.bundle, args.envelope], overwrite=args.overwrite)
    if args.bundle is not None:
        from myoedge.edge.model.bundle import load_bundle

        bundle = load_bundle(args.bundle)
        design = design_from_bundle(bundle)
        sha = bundle.meta.onnx.sha256[:12]
        source = f"the envelope of bundle '{bundle.meta.name}' (onnx sha256 {sha})"
    else:
        design = design_from_config_file(args.envelope)
        source = "an envelope config"
    summary = export_firmware(out, design=design, source=source, n_samples=args.vector_samples,
                              seed=args.seed, keep_previous=True)
    print(f"wrote {', '.join(summary['files'])} to {args.out} "
          f"(envelope hash {summary['envelope_hash'][:12]})")
    return summary
