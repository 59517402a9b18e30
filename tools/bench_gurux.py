"""`osgp-meter bench`, the reference point: an in-process Gurux DLMS
server (package gurux-dlms, extra `bench`) answering GET of one register,
and GuruxCase timing it like a MepCase. Split out of tools/bench.py (which
re-exports these names)."""
from .bench_mep import CHUNK, _check, _clock, chunk_rate


# ---------------------------------------------------------------------------
# the Gurux DLMS reference point
# ---------------------------------------------------------------------------

_GURUX = None


def gurux_available():
    """None if gurux-dlms can be used, else the reason it cannot."""
    try:
        _gurux_classes()
    except ImportError as exc:
        return "gurux-dlms is not installed (pip install 'osgp-meter[bench]'): %s" % exc
    return None


def _gurux_classes():
    """(Server class, Reply class, gurux names) built on first use.

    gurux-dlms 1.0.203's Python server calls methods that its own classes
    lack (GXServerReply.setReply/getConnectionInfo, server.notifyRead,
    onPostRead() without arguments, set/getTransaction), and its association
    setup appends a collection where it expects an object; the subclasses
    below supply those so a plain GET works. Its HDLC SNRM handling fails
    too, hence WRAPPER framing (which, like MEP's, is a length prefix with
    no CRC)."""
    global _GURUX
    if _GURUX is not None:
        return _GURUX
    from gurux_dlms import GXDLMSServer, GXDLMSClient, GXServerReply, GXReplyData
    from gurux_dlms.enums import InterfaceType, Authentication, AccessMode, MethodAccessMode, Unit
    from gurux_dlms.enums.SourceDiagnostic import SourceDiagnostic
    from gurux_dlms.objects import GXDLMSRegister, GXDLMSAssociationLogicalName

    class Reply(GXServerReply):
        def setReply(self, value):
            self.reply = value

        def getConnectionInfo(self):
            return self.connectionInfo

    class Server(GXDLMSServer):
        LN = "1.0.1.8.0.255"       # active energy import, total
        VALUE = 123456

        def __init__(self):
            super().__init__(True, InterfaceType.WRAPPER)
            reg = GXDLMSRegister(self.LN)
            reg.value = self.VALUE
            reg.scaler = 1
            reg.unit = Unit.ACTIVE_ENERGY
            assoc = GXDLMSAssociationLogicalName()
            assoc.objectList.append(reg)
            self.items.append(reg)
            self.items.append(assoc)
            self.initialize()

        def isTarget(self, serverAddress, clientAddress):
            return True

        def onValidateAuthentication(self, authentication, password):
            return SourceDiagnostic.NONE

        def onFindObject(self, objectType, sn, ln):
            return None

        def onGetAttributeAccess(self, arg):
            return AccessMode.READ_WRITE

        def onGetMethodAccess(self, arg):
            return MethodAccessMode.ACCESS

        def onPreGet(self, args):
            pass

        def onPostGet(self, args):
            pass

        def onPreRead(self, args):
            pass

        def onPostRead(self, args=None):
            pass

        def onPreWrite(self, args):
            pass

        def onPostWrite(self, args):
            pass

        def onPreAction(self, args):
            pass

        def onPostAction(self, args):
            pass

        def onConnected(self, connectionInfo):
            pass

        def onInvalidConnection(self, connectionInfo):
            pass

        def onDisconnected(self, connectionInfo):
            pass

        def notifyRead(self, *args):
            pass

        def notifyConnected(self, *args):
            pass

        def setTransaction(self, value):
            self.transaction = value

        def getTransaction(self):
            return self.transaction

    names = {"GXDLMSClient": GXDLMSClient, "GXReplyData": GXReplyData,
             "GXDLMSRegister": GXDLMSRegister, "InterfaceType": InterfaceType,
             "Authentication": Authentication}
    _GURUX = (Server, Reply, names)
    return _GURUX


class GuruxCase:
    """GET of one register's value from an associated Gurux DLMS server."""

    def __init__(self):
        Server, Reply, g = _gurux_classes()
        self.name = "gurux_get_register"
        self.label = "Gurux DLMS GET register (WRAPPER, no security)"
        self.Reply = Reply
        self.server = server = Server()
        client = g["GXDLMSClient"](True, 16, 1, g["Authentication"].NONE, None, g["InterfaceType"].WRAPPER)

        def ask(req):
            sr = Reply(bytes(req))
            server.handleRequest(sr)
            return sr.reply

        for req in client.aarqRequest():
            rd = g["GXReplyData"]()
            client.getData(ask(req), rd)
            client.parseAareResponse(rd.data)
        self.get = bytes(client.read(g["GXDLMSRegister"](Server.LN), 2)[0])
        reply = ask(self.get)
        rd = g["GXReplyData"]()
        client.getData(reply, rd)
        _check(rd.value == Server.VALUE, "Gurux answered %r, expected %r" % (rd.value, Server.VALUE))
        self.expected = bytes(reply)
        _check(bytes(ask(self.get)) == self.expected, "Gurux answers a repeated GET differently")
        self.frames = [self.get] * CHUNK
        self.verified = 1
        self.requests = 0

    def _chunk(self):
        Reply = self.Reply
        handle = self.server.handleRequest
        sr = None
        t0 = _clock()
        for f in self.frames:
            sr = Reply(f)
            handle(sr)
        dt = _clock() - t0
        _check(bytes(sr.reply) == self.expected, "Gurux answer changed")
        self.verified += 1
        n = len(self.frames)
        self.requests += n
        return n, dt

    def sample(self, seconds):
        return chunk_rate(self._chunk, seconds)

    def describe(self):
        return {"secure": False, "rc4": False, "rc4_backend": None,
                "request_bytes": len(self.get), "answer_bytes": len(self.expected)}
