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
    """Evaluate a size: an int, or byte-coded RPN (see catalogue_data.py).

    Codes: 01 c(3, MSB) push c; 02 table(2) offset(2) n push the unsigned
    little-endian field of a dimension table; 03 lo width pop x, push
    (x >> lo) & (2**width - 1); '+' '-' '*' '/' 'M' (max) pop b, pop a, push.
    `field(table_id, offset, nbytes)` reads the meter's own dimension tables.
    Returns None when the expression cannot be evaluated (bad code, stack
    underflow, division by zero, negative result): such a table is treated
    as absent rather than crashing the request path.
    """
    if isinstance(expr, int):
        return expr
    stack = []
    i = 0
    n = len(expr)
    while i < n:
        op = expr[i]
        if op == 0x01 and i + 4 <= n:
            stack.append((expr[i + 1] << 16) | (expr[i + 2] << 8) | expr[i + 3])
            i += 4
        elif op == 0x02 and i + 6 <= n:
            stack.append(field((expr[i + 1] << 8) | expr[i + 2], (expr[i + 3] << 8) | expr[i + 4], expr[i + 5]))
            i += 6
        elif op == 0x03 and i + 3 <= n and stack:
            stack.append((stack.pop() >> expr[i + 1]) & ((1 << expr[i + 2]) - 1))
            i += 3
        else:
            if len(stack) < 2:
                return None
            b = stack.pop()
            a = stack.pop()
            if op == 0x2B:
                stack.append(a + b)
            elif op == 0x2D:
                stack.append(a - b)
            elif op == 0x2A:
                stack.append(a * b)
            elif op == 0x2F:
                if b == 0:
                    return None
                stack.append(a // b)
            elif op == 0x4D:
                stack.append(a if a > b else b)
            else:
                return None
            i += 1
    if len(stack) != 1 or stack[0] < 0:
        return None
    return stack[0]


def expression_fields(expr):
    """(table_id, offset, nbytes) of every field a byte-coded size reads."""
    out = []
    if isinstance(expr, int):
        return out
    i = 0
    n = len(expr)
    while i < n:
        op = expr[i]
        if op == 0x01:
            i += 4
        elif op == 0x02:
            if i + 6 <= n:
                out.append(((expr[i + 1] << 8) | expr[i + 2], (expr[i + 3] << 8) | expr[i + 4], expr[i + 5]))
            i += 6
        elif op == 0x03:
            i += 3
        else:
            i += 1
    return out


def dimension_tables(tables):
    """The set of table IDs that some size expression reads."""
    dims = set()
    for entry in tables.values():
        for tid, _, _ in expression_fields(entry[T_SIZE]):
            dims.add(tid)
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
