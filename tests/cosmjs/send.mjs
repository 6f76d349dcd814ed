// Acceptance check with the stock cosmjs client, as wallets and dapps use it:
//   node send.mjs <rpc url> <recipient address> <amount in ujoule>   (mnemonic on stdin)
// Reads balances, sends twice with SigningStargateClient.sendTokens (an explicit fee, then fee "auto",
// which simulates the tx for its gas as Keplr does), waits for inclusion and prints one JSON object
// with the balances before and after.
import { readFileSync } from "node:fs";
import { DirectSecp256k1HdWallet, decodeTxRaw } from "@cosmjs/proto-signing";
import { GasPrice, SigningStargateClient, StargateClient, assertIsDeliverTxSuccess } from "@cosmjs/stargate";

const DENOM = "ujoule";
const FEE = { amount: [{ denom: DENOM, amount: "5000" }], gas: "200000" };

async function balances(client, addresses) {
  const result = {};
  for (const address of addresses) {
    result[address] = (await client.getBalance(address, DENOM)).amount;
  }
  return result;
}

async function main() {
  const [rpc, recipient, amount] = process.argv.slice(2);
  const mnemonic = readFileSync(0, "utf8").trim();
  const wallet = await DirectSecp256k1HdWallet.fromMnemonic(mnemonic, { prefix: "mxw" });
  const [{ address: sender }] = await wallet.getAccounts();

  const reader = await StargateClient.connect(rpc);
  const chainId = await reader.getChainId();
  const before = await balances(reader, [sender, recipient]);

  const signer = await SigningStargateClient.connectWithSigner(rpc, wallet, { gasPrice: GasPrice.fromString(`0.025${DENOM}`) });
  const result = await signer.sendTokens(sender, recipient, [{ denom: DENOM, amount }], FEE, "cosmjs acceptance");
  assertIsDeliverTxSuccess(result);
  const auto = await signer.sendTokens(sender, recipient, [{ denom: DENOM, amount }], "auto", "cosmjs auto fee");
  assertIsDeliverTxSuccess(auto);
  const autoTx = decodeTxRaw((await reader.getTx(auto.transactionHash)).tx);

  const after = await balances(reader, [sender, recipient]);
  const account = await reader.getAccount(sender);
  reader.disconnect();
  signer.disconnect();
  console.log(JSON.stringify({
    chainId,
    sender,
    recipient,
    before,
    after,
    fee: FEE.amount[0].amount,
    tx: { hash: result.transactionHash, height: result.height, code: result.code, gasUsed: String(result.gasUsed) },
    autoTx: { code: auto.code, fee: autoTx.authInfo.fee.amount[0].amount, gasWanted: String(auto.gasWanted), gasUsed: String(auto.gasUsed) },
    senderSequence: account.sequence,
  }));
}

main().catch((error) => {
  console.error(`cosmjs acceptance failed: ${error.stack || error}`);
  process.exit(1);
});
