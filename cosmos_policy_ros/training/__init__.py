"""Fine-tuning and evaluation data pipeline: ROS-free (never imports rclpy).

episodes      read demonstration / rollout episodes (our HDF5, the released preprocessed
              layout with mp4 videos, raw ALOHA HDF5, JPEG rollouts)
samples       sample windows as the reference builds them (chunk padding, future index,
              value targets, sample kinds and the data mix)
augment       the reference's train-time image augmentation, one draw per sample
latent_cache  frozen-VAE latents on disk, keyed by VAE weights + image size + augmentation
dataset       episodes + split + statistics + cache -> model-ready batches
config        the train / train-vae YAML schema
trainer       the training loop (checkpoints, resume, validation, DDP/FSDP)
"""
