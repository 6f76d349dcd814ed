"""`localnet/run`: start a local network, print its endpoints and funded keys, stop it on Ctrl-C."""

import argparse
import shutil
import signal
from pathlib import Path

from localnet.network import Localnet, LocalnetError


def main() -> int:
    parser = argparse.ArgumentParser(prog="localnet/run", description=__doc__)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=Path("localnet/homes"), help="node homes (recreated)")
    parser.add_argument("--chain-id", default="maxwell-local-1")
    arguments = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    shutil.rmtree(arguments.dir, ignore_errors=True)
    try:
        network = Localnet(arguments.dir, arguments.validators, arguments.chain_id)
        network.start()
    except LocalnetError as error:
        print(f"localnet: {error}")
        return 1
    try:
        for node in network.nodes:
            print(f"node{node.index}: RPC {node.rpc}  home {node.home}  logs {node.home}/{{app,cometbft}}.log")
        for key in network.keys:
            print(f"funded key {key['name']} {key['address']} (keyring-backend test, --home {key['home']})")
        print(f"mnemonics (dev only): {arguments.dir / 'keys.json'}")
        print("Ctrl-C stops every process of the network")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        network.stop()
        print("localnet stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
