"""The kind of each op of a profiled train step, for XLA:CPU and for PyTorch (`benchmarks.twins.profile`).

Three kinds (`KINDS`): matmul & convolution; copies & transposes (data movement: slices, pads, gathers,
concatenations too); and the rest (elementwise, reductions, the optimizer). Torch-free, so the suite tests it.
"""
from __future__ import annotations

import re

KINDS = ("matmul & convolution", "copies & transposes", "other")
CONTROL_FLOW = ("while", "conditional", "call")
_TORCH_COMPUTE = re.compile(r"(^|::)(_?mkldnn_)?(mm|addmm|bmm|baddbmm|matmul|linear|conv|_conv|convolution|"
                            r"mkldnn_convolution|convolution_backward|_convolution|conv2d|conv1d|"
                            r"conv_transpose\w*|_slow_conv\w*|thnn_conv\w*|_scaled_dot_product\w*|"
                            r"mkldnn_rnn\w*)")
_TORCH_COPY = re.compile(r"(^|::)(copy_|contiguous|clone|transpose|permute|t|reshape|_reshape_alias|view|"
                         r"as_strided|expand|cat|stack|narrow|slice|select|unbind|split|chunk)$")


def hlo_op_kinds(hlo_text: str) -> dict[str, str]:
    """{instruction name: kind} for every instruction of a compiled HLO module's text (`KINDS`, or
    "control flow" for while / conditional / call).

    A fusion is a matmul & convolution when the computation it calls contains a dot or a convolution
    (directly or through the computations that one calls); a copy & transpose when it holds nothing but
    copies, transposes, bitcasts, reshapes, slices, pads, gathers and the like (data movement)."""
    computations: dict[str, list[tuple[str, str, list[str]]]] = {}
    current = None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(|\{)", line)
        if head and not line.startswith(" ") and "=" not in line.split("(")[0]:
            current = head.group(1)
            computations[current] = []
            continue
        m = re.match(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S.*?\s([a-z][\w\-]*)\(", line)
        if m and current is not None:
            called = re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)", line)
            called += re.findall(r"%([\w.\-]+)", line.split("calls=")[1]) if "calls={" in line else []
            computations[current].append((m.group(1), m.group(2), called))

    @_memo
    def holds_compute(comp: str) -> bool:
        return any(op in ("dot", "convolution") or any(holds_compute(c) for c in called if c in computations)
                   for _, op, called in computations.get(comp, ()))

    layout_ops = {"copy", "transpose", "bitcast", "reshape", "slice", "parameter", "tuple", "get-tuple-element",
                  "constant", "broadcast", "concatenate", "dynamic-slice", "dynamic-update-slice", "pad", "gather",
                  "reverse", "iota"}

    @_memo
    def only_layout(comp: str) -> bool:
        return all(op in layout_ops or (op == "fusion" and all(only_layout(c) for c in called if c in computations))
                   for _, op, called in computations.get(comp, ()))

    kinds = {}
    for comp, instructions in computations.items():
        for name, op, called in instructions:
            if op in CONTROL_FLOW:
                kinds[name] = "control flow"
            elif op in ("dot", "convolution") or (op in ("fusion", "custom-call") and any(
                    holds_compute(c) for c in called)):
                kinds[name] = KINDS[0]
            elif op in ("copy", "transpose") or (op == "fusion" and called and all(
                    only_layout(c) for c in called if c in computations)):
                kinds[name] = KINDS[1]
            else:
                kinds[name] = KINDS[2]
    return kinds


def _memo(fn):
    cache: dict = {}

    def wrapped(arg):
        if arg not in cache:
            cache[arg] = False  # a cycle (none in HLO) would read False
            cache[arg] = fn(arg)
        return cache[arg]
    return wrapped


def torch_op_kind(name: str) -> str:
    """The kind (`KINDS`) of a PyTorch profiler op name such as "aten::addmm"."""
    if _TORCH_COMPUTE.search(name):
        return KINDS[0]
    if _TORCH_COPY.search(name):
        return KINDS[1]
    return KINDS[2]
