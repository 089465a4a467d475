"""The models tool (`lightbox models ...`): what each production model must look like,
where its file goes in the Triton model repository, and the commands that put it there.

    contracts   the ONNX contracts (tensor names, dtypes, shapes) and the front models
                that serve them with uint8 image signatures
    repository  what is installed in a model repository, and which models can load
    render      config.pbtxt for the cpu (python backend over onnxruntime) or gpu
                (onnxruntime + TensorRT EP, or tensorrt_plan) target
    install     an operator's ONNX file into NAME/1/, checked against its contract
    rrdbnet     Real-ESRGAN's RRDBNet in torch, its checkpoint layouts, ONNX export
    testmodels  tiny random-weight ONNX files with the production signatures
    verify      load every model in a real tritonserver and run one inference each
    trt         TensorRT plans (GPU hosts only)
    cli         the `lightbox models` command line
    pybackend   what the python-backend models in model_repository/ share, imported
                inside Triton's python stub (copied alone into the GPU image, so
                this file stays free of imports)

Nothing here downloads anything: weights come from the operator.
"""
