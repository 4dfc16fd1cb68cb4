"""Serve Cosmos Policy to other stacks and to a robot PC without a GPU (ROS-free).

codec    msgpack (openpi layout) and JSON (json_numpy layout) encodings, pickle-free
schema   the openpi observation and the reference /act request: validation, replies
service  PolicyService: one model, one inference at a time, the policy node's seed sequence
server   PolicyServer: openpi websocket + /act + /healthz on one port (asyncio)
client   PolicyClient (one websocket connection) and RemotePolicy (the policy node's
         backend:=remote: CosmosPolicy.predict's contract, reconnecting with backoff)

`cosmos-policy-ros serve` (commands/serve.py) is the command line; docs/serving.md the guide.
"""
