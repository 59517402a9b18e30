# Runtime view of the catalogue: table sizes, access masks and flags.
#
# The data is generated from tables/*.toml into catalogue_data.py (a compact,
# import-free module that freezes into flash on boards). Sizes that follow the
# dimension tables are Reverse Polish expressions, evaluated here against the
# meter's own dimension fields.

T_SIZE = 0
T_READ = 1
T_WRITE = 2
T_FLAGS = 3
T_DEFAULT = 4

F_NV = 0x01      # survives power loss
F_DATA = 0x02    # measured data: BP03 "clear data" resets it

P_CALL = 0
P_FLAGS = 1

PENDING_OFFSET = 4096
ET_BASE = 2048


def eval_size(expr, field):
    """Evaluate a size: an int, or an RPN tuple (see tables/README.md).

    `field(table_id, offset, nbytes)` reads an unsigned little-endian field of
    a dimension table. Returns None when the expression cannot be evaluated
    (stack underflow, division by zero, negative result): such a table is
    treated as absent rather than crashing the request path.
    """
    if isinstance(expr, int):
        return expr
    stack = []
    for op in expr:
        if isinstance(op, int):
            stack.append(op)
        elif isinstance(op, str):
            if len(stack) < 2:
                return None
            b = stack.pop()
            a = stack.pop()
            if op == "+":
                stack.append(a + b)
            elif op == "-":
                stack.append(a - b)
            elif op == "*":
                stack.append(a * b)
            elif op == "/":
                if b == 0:
                    return None
                stack.append(a // b)
            elif op == "max":
                stack.append(a if a > b else b)
            else:
                return None
        elif op[0] == "f":
            stack.append(field(op[1], op[2], op[3]))
        elif op[0] == "b":
            if not stack:
                return None
            stack.append((stack.pop() >> op[1]) & ((1 << op[2]) - 1))
        else:
            return None
    if len(stack) != 1 or stack[0] < 0:
        return None
    return stack[0]


def dimension_tables(tables):
    """The set of table IDs that some size expression reads."""
    dims = set()
    for entry in tables.values():
        size = entry[T_SIZE]
        if not isinstance(size, int):
            for op in size:
                if isinstance(op, tuple) and op[0] == "f":
                    dims.add(op[1])
    return dims


def name(table_id):
    """BTnn / ETnn, with a +4096 pending copy shown as such."""
    pending = ""
    if table_id >= PENDING_OFFSET:
        table_id -= PENDING_OFFSET
        pending = " (pending)"
    if table_id >= ET_BASE:
        return "ET%02d%s" % (table_id - ET_BASE, pending)
    return "BT%02d%s" % (table_id, pending)
