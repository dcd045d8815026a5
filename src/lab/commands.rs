//! `edgecache lab partition|heal|kill|restart|status`: calls to a running
//! lab's control API.

use super::control::ControlClient;
use super::state::find_lab;
use super::{LabAction, table};

/// Runs one lab command against the running lab.
pub async fn run(action: LabAction) -> anyhow::Result<()> {
    match action {
        LabAction::Partition(pair) => {
            let lab = find_lab(pair.target.lab.as_deref())?;
            let links = ControlClient::new(&lab).partition(&pair.a, &pair.b).await?;
            println!(
                "partitioned {} from {}: {} link(s) blackholed",
                pair.a,
                pair.b,
                links.len()
            );
            for link in links {
                println!("  {link}");
            }
        }
        LabAction::Heal(pair) => {
            let lab = find_lab(pair.target.lab.as_deref())?;
            let links = ControlClient::new(&lab).heal(&pair.a, &pair.b).await?;
            println!(
                "healed {} and {}: {} link(s) up",
                pair.a,
                pair.b,
                links.len()
            );
        }
        LabAction::Kill(node) => {
            let lab = find_lab(node.target.lab.as_deref())?;
            ControlClient::new(&lab).kill(&node.node).await?;
            println!("killed {}", node.node);
        }
        LabAction::Restart(node) => {
            let lab = find_lab(node.target.lab.as_deref())?;
            let info = ControlClient::new(&lab).restart(&node.node).await?;
            println!("restarted {} (pid {})", node.node, info["pid"]);
        }
        LabAction::Status(status) => {
            let lab = find_lab(status.target.lab.as_deref())?;
            let live = ControlClient::new(&lab).status().await?;
            if status.json {
                println!("{}", serde_json::to_string_pretty(&live)?);
            } else {
                print!("{}", table::nodes(&live, true));
                let faults = table::faults(&live);
                if faults.is_empty() {
                    println!("\nall {} links up", live.links.len());
                } else {
                    println!("\nlinks not up:\n{faults}");
                }
                println!("steering DNS {}  control {}", live.dns, live.control);
                if let Some(purge) = live.purge_control {
                    println!("purge control {purge} (token in lab.json)");
                }
            }
        }
    }
    Ok(())
}
