"""What many test folders share, each piece in one place (import it, never copy it):

    tests.support.ports   free_port: a free loopback TCP port
    tests.support.wait    wait_until (fails the test with what it waited for), eventually (a bool)
    tests.support.broker  Broker: a real, restartable mosquitto; fixtures broker, running_broker
    tests.support.agent   AgentProcess: `python -m edgecollect run` as a real process (status, SIGTERM, kill -9)
    tests.support.sink    Sink: the Go reference OTLP/OTel-Arrow sink (tests/interop/*.go); fixtures
                          sink_binary, make_sink, go_sink

A conftest.py makes a fixture available to its folder by importing it from here.
"""
