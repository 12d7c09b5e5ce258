"""What leaves the workstation for the device: TensorRT engines, firmware headers, Jetson service files.

* :mod:`.engine` builds a bundle's TensorRT engine on the Jetson and verifies it against ONNX Runtime
  (``myoedge build-engine``); :mod:`.cache` decides which engine may be loaded (key and sidecar);
  :mod:`.precision` holds the fp32/fp16 recipes and tolerances, :mod:`.onnx_fp16` the graph conversion
  that TensorRT 11's strongly typed networks need for fp16.
* :mod:`.firmware` and :mod:`.firmware_frame` generate the amplifier firmware's C headers — frame
  format, CRC, CMSIS-DSP envelope coefficients and test vectors (``myoedge export-firmware``).
* ``files/`` holds the systemd unit, the udev rule and the JetPack 6 setup script (docs/deploy.md).

Nothing here imports TensorRT or pycuda at module import; see docs/deploy.md.
"""
