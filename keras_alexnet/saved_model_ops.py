"""What a SavedModel's graph would do, read before any of it runs.

A SavedModel is a program: its signatures are TensorFlow graphs, and a graph can read and
write files (``ReadFile``, ``WriteFile``, ``SaveV2``), list folders, run Python
(``PyFunc``) or do anything else an op can. ``tf.saved_model.load`` and a signature call run
them. keras-alexnet reads a SavedModel only after every op of its graph and functions is on
``ALLOWED_OPS``, the arithmetic its own exports (and TF Serving models like them) are made of,
and the checkpoint ops (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints``) only in functions
that no signature reaches (the saver TensorFlow adds to every SavedModel); a TF1-style SavedModel
(no object graph) is refused whole.

This is the second line. ``predict`` and ``evaluate`` never run a SavedModel's graph: they rebuild the
model from the record the export wrote and read its variables as tensor data
(``saved_model_record``). An allow-list over a graph TensorFlow interprets is not what keeps a
foreign file from acting; reading it as data is.
"""

from __future__ import annotations

from pathlib import Path

# Arithmetic, shapes, control flow and variables: ops that touch no file, process or Python.
ALLOWED_OPS = frozenset(
    """
    Abs Add AddN AddV2 ArgMax ArgMin Assert AssignVariableOp AvgPool BatchMatMulV2 BatchMatMulV3 BiasAdd Bitcast
    BroadcastArgs BroadcastTo Cast Ceil CheckNumerics ClipByValue ConcatV2 Const Conv2D Conv2DBackpropInput
    CropAndResize Cumsum DecodeBmp DecodeGif DecodeImage DecodeJpeg DecodePng DepthwiseConv2dNative
    DisableCopyOnRead Einsum Elu EnsureShape Equal Erf Exp ExpandDims ExtractJpegShape Fill Floor FloorDiv FloorMod
    FusedBatchNormV3 GatherNd GatherV2 Greater GreaterEqual Identity IdentityN If LeakyRelu Less LessEqual Log
    Log1p LogicalAnd LogicalNot LogicalOr MatMul Max MaxPool MaxPoolV2 Maximum Mean Min Minimum MirrorPad Mul Neg
    NoOp NotEqual OneHot OnesLike Pack Pad PadV2 PartitionedCall Placeholder PlaceholderWithDefault
    PreventGradient Prod Range Rank ReadVariableOp RealDiv Reciprocal Relu Relu6 Reshape ResizeArea
    ResizeBicubic ResizeBilinear ResizeNearestNeighbor ReverseV2 Round Rsqrt ScaleAndTranslate Select SelectV2
    Shape ShapeN Sigmoid Sign Size Slice Softmax Softplus Split SplitV Sqrt Square SquaredDifference Squeeze
    StatefulPartitionedCall StatelessIf StatelessWhile StaticRegexFullMatch StopGradient StridedSlice StringJoin
    Sub Sum Tanh TensorListElementShape TensorListFromTensor TensorListGetItem TensorListLength
    TensorListReserve TensorListSetItem TensorListStack Tile TopKV2 Transpose Unpack VarHandleOp
    VarIsInitializedOp Where While ZerosLike
    """.split()
)
# The checkpoint saver every SavedModel holds: file ops, allowed only where no signature reaches.
SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})


class UnsafeSavedModelError(ValueError):
    """A SavedModel whose graph holds an op keras-alexnet does not run; the message names it."""


def _called_functions(node):
    """The names of the functions a node calls (``f`` of a call, the branches and bodies of control flow)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names += [function.name for function in value.list.func]
    return names


def _signature_functions(meta_graph, functions):
    """The functions the signatures reach, through the top-level graph's calls."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    pending = [
        tensor.name.split(":")[0].lstrip("^")
        for signature in meta_graph.signature_def.values()
        for tensor in [*signature.inputs.values(), *signature.outputs.values()]
    ]
    seen_nodes, reached = set(), set()
    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        reached.update(_called_functions(node))
        pending += [source.split(":")[0].lstrip("^") for source in node.input]
    queue = list(reached)
    while queue:
        function = functions.get(queue.pop())
        if function is None:
            continue
        for node in function.node_def:
            for called in _called_functions(node):
                if called not in reached:
                    reached.add(called)
                    queue.append(called)
    return reached


def check_saved_model(path):
    """Refuse (``UnsafeSavedModelError``) a SavedModel folder whose graph holds an op outside
    ``ALLOWED_OPS``, or a checkpoint op a signature reaches; nothing of it runs. Returns the ops found."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(f"{path}/saved_model.pb is not a readable SavedModel ({error}).") from None
    found = set()
    for meta_graph in model.meta_graphs:
        if not meta_graph.object_graph_def.nodes:
            raise UnsafeSavedModelError(
                f"{path} is refused before running any of it: it is a TF1-style SavedModel (a graph with no object "
                "graph: its init op, main op and saver run at load). keras-alexnet reads only the SavedModels "
                "`keras-alexnet export --format savedmodel` writes."
            )
        functions = {function.signature.name: function for function in meta_graph.graph_def.library.function}
        reached = _signature_functions(meta_graph, functions)
        places = [("the graph", None, meta_graph.graph_def.node)]
        places += [(f"function {name}", name, function.node_def) for name, function in functions.items()]
        for where, name, nodes in places:
            for node in nodes:
                found.add(node.op)
                if node.op in ALLOWED_OPS or (node.op in SAVER_OPS and name not in reached):
                    continue
                reason = (
                    "a file operation that a signature reaches"
                    if node.op in SAVER_OPS
                    else "not an operation keras-alexnet runs (file, process and Python operations never are)"
                )
                raise UnsafeSavedModelError(
                    f"{path} is refused before running any of it: {where} holds the op {node.op} ({node.name}), "
                    f"{reason}. A SavedModel is a program; keras-alexnet runs only those made of arithmetic, "
                    "like the ones `keras-alexnet export --format savedmodel` writes."
                )
    return found
